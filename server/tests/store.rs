//! The storage layer under concurrency: two server processes (two pools on one database) race
//! to hand out a campaign's actions; every device gets exactly one.

mod common;

use airlock_server::campaign;
use airlock_server::store::{Backend, DeviceStatus, NewCampaign, Store};
use common::TestServer;

async fn two_processes_hand_out_each_action_once(b: Backend) {
    let s = TestServer::start(b).await;
    let bundle = s.good_bundle("1.0.0").await;
    let now = airlock_server::now_ms();
    let ids: Vec<String> = (0..20).map(|i| format!("r{i:02}")).collect();
    for id in &ids {
        s.store
            .insert_device(id, id, None, DeviceStatus::Accepted, now)
            .await
            .unwrap();
    }
    // A second "process": its own pool on the same database.
    let url = match b {
        Backend::Sqlite => format!(
            "sqlite://{}?mode=rwc",
            s.dir.path().join("airlock.db").display()
        ),
        Backend::Postgres => s.database_url.clone().unwrap(),
    };
    let other = Store::connect(&url).await.unwrap();
    let new = NewCampaign {
        name: "race".into(),
        bundle_id: bundle,
        group: "all".into(),
        phases: vec![50, 100],
        success_threshold: 50,
        error_threshold: 100,
        download: "forced".into(),
        update: "forced".into(),
        window_start: None,
        window_duration: None,
    };
    let snapshot: Vec<(String, i64)> = ids
        .iter()
        .enumerate()
        .map(|(i, d)| {
            (
                d.clone(),
                campaign::phase_of(i, ids.len(), &new.phases) as i64,
            )
        })
        .collect();
    let id = s.store.insert_campaign(&new, &snapshot, now).await.unwrap();
    let (a, c) = tokio::join!(
        campaign::step(&s.store, id, now),
        campaign::step(&other, id, now)
    );
    a.unwrap();
    c.unwrap();
    let devices = s.store.campaign_devices(id).await.unwrap();
    assert_eq!(devices.iter().filter(|d| d.action_id.is_some()).count(), 10);
    // Phase 1 succeeds on every device; both processes step at once; phase 2 starts once.
    for d in &ids[..10] {
        let a = s.store.open_action(d).await.unwrap().unwrap();
        let to: &[_] = &[airlock_server::store::ActionStatus::Scheduled];
        s.store
            .record_feedback(
                d,
                a.id,
                Some((to, airlock_server::store::ActionStatus::Succeeded)),
                "closed success",
                &[],
                now,
            )
            .await
            .unwrap();
    }
    let (a, c) = tokio::join!(
        campaign::step(&s.store, id, now),
        campaign::step(&other, id, now)
    );
    a.unwrap();
    c.unwrap();
    let c = s.store.campaign(id).await.unwrap().unwrap();
    assert_eq!(c.current_phase, 1);
    for d in &ids {
        let actions = s.store.actions_of(d).await.unwrap();
        assert_eq!(actions.len(), 1, "{d} has {actions:?}");
    }
    other.close().await;
    s.finish().await;
}
both_backends!(two_processes_hand_out_each_action_once);
