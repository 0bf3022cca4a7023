//! Campaigns: a bundle rolled out to a group's snapshot in phases.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::actions::{self, ActionStatus, NewAction};
use super::{Store, StoreError, StoreResult, from_json, to_json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CampaignState {
    Running,
    Paused,
    Canceled,
    Finished,
}

impl CampaignState {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Running => "running",
            CampaignState::Paused => "paused",
            CampaignState::Canceled => "canceled",
            CampaignState::Finished => "finished",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => CampaignState::Running,
            "paused" => CampaignState::Paused,
            "canceled" => CampaignState::Canceled,
            "finished" => CampaignState::Finished,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Campaign {
    pub id: i64,
    pub name: String,
    pub bundle_id: i64,
    pub group: String,
    /// Cumulative percentages of the snapshot, strictly increasing, the last 100.
    pub phases: Vec<u32>,
    pub success_threshold: i64,
    pub error_threshold: i64,
    pub download: String,
    pub update: String,
    pub window_start: Option<i64>,
    pub window_duration: Option<i64>,
    pub state: CampaignState,
    /// Why it paused (or ended).
    pub reason: Option<String>,
    /// Index of the current phase (0-based).
    pub current_phase: i64,
    /// Failures in the current phase the operator accepted by resuming.
    pub accepted_failures: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[derive(Debug, Clone)]
pub struct NewCampaign {
    pub name: String,
    pub bundle_id: i64,
    pub group: String,
    pub phases: Vec<u32>,
    pub success_threshold: i64,
    pub error_threshold: i64,
    pub download: String,
    pub update: String,
    pub window_start: Option<i64>,
    pub window_duration: Option<i64>,
}

/// A device of a campaign's snapshot and where its action stands.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CampaignDevice {
    pub controller_id: String,
    pub phase: i64,
    pub action_id: Option<i64>,
    pub action_status: Option<ActionStatus>,
}

const COLUMNS: &str = "id, name, bundle_id, group_name, phases, success_threshold, error_threshold, download, update_handling, window_start, window_duration, state, reason, current_phase, accepted_failures, created_ms, updated_ms";

fn campaign(row: &AnyRow) -> StoreResult<Campaign> {
    let state: String = row.try_get("state")?;
    Ok(Campaign {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        bundle_id: row.try_get("bundle_id")?,
        group: row.try_get("group_name")?,
        phases: from_json(&row.try_get::<String, _>("phases")?, "campaign phases")?,
        success_threshold: row.try_get("success_threshold")?,
        error_threshold: row.try_get("error_threshold")?,
        download: row.try_get("download")?,
        update: row.try_get("update_handling")?,
        window_start: row.try_get("window_start")?,
        window_duration: row.try_get("window_duration")?,
        state: CampaignState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("campaign state {state:?}")))?,
        reason: row.try_get("reason")?,
        current_phase: row.try_get("current_phase")?,
        accepted_failures: row.try_get("accepted_failures")?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
    })
}

impl Store {
    /// Creates a running campaign over `members` (controller id, phase index), in order.
    pub async fn insert_campaign(
        &self,
        c: &NewCampaign,
        members: &[(String, i64)],
        now: i64,
    ) -> StoreResult<i64> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "INSERT INTO campaigns (name, bundle_id, group_name, phases, success_threshold, error_threshold, download, update_handling, window_start, window_duration, state, reason, current_phase, accepted_failures, created_ms, updated_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'running', NULL, 0, 0, $11, $11) RETURNING id",
        )
        .bind(&c.name)
        .bind(c.bundle_id)
        .bind(&c.group)
        .bind(to_json(&c.phases))
        .bind(c.success_threshold)
        .bind(c.error_threshold)
        .bind(&c.download)
        .bind(&c.update)
        .bind(c.window_start)
        .bind(c.window_duration)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get("id")?;
        for (pos, (device, phase)) in members.iter().enumerate() {
            sqlx::query(
                "INSERT INTO campaign_devices (campaign_id, controller_id, phase, position, action_id) VALUES ($1, $2, $3, $4, NULL)",
            )
            .bind(id)
            .bind(device)
            .bind(*phase)
            .bind(pos as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    pub async fn campaigns(&self) -> StoreResult<Vec<Campaign>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM campaigns ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(campaign).collect()
    }

    pub async fn campaign(&self, id: i64) -> StoreResult<Option<Campaign>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM campaigns WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(campaign).transpose()
    }

    /// The snapshot in order, each with its action's status.
    pub async fn campaign_devices(&self, id: i64) -> StoreResult<Vec<CampaignDevice>> {
        let rows = sqlx::query(
            "SELECT cd.controller_id, cd.phase, cd.action_id, a.status
             FROM campaign_devices cd LEFT JOIN actions a ON a.id = cd.action_id
             WHERE cd.campaign_id = $1 ORDER BY cd.position",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let status: Option<String> = r.try_get("status")?;
                Ok(CampaignDevice {
                    controller_id: r.try_get("controller_id")?,
                    phase: r.try_get("phase")?,
                    action_id: r.try_get("action_id")?,
                    action_status: status.as_deref().and_then(ActionStatus::parse),
                })
            })
            .collect()
    }

    /// Moves a campaign from one of `from` to `to`; false when another request got there first.
    pub async fn set_campaign_state(
        &self,
        id: i64,
        from: CampaignState,
        to: CampaignState,
        reason: Option<&str>,
        accepted_failures: i64,
        now: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE campaigns SET state = $1, reason = $2, accepted_failures = $3, updated_ms = $4
             WHERE id = $5 AND state = $6",
        )
        .bind(to.as_str())
        .bind(reason)
        .bind(accepted_failures)
        .bind(now)
        .bind(id)
        .bind(from.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Starts phase `to` if the campaign is still running phase `from` (one process wins).
    pub async fn advance_phase(&self, id: i64, from: i64, to: i64, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE campaigns SET current_phase = $1, accepted_failures = 0, reason = NULL, updated_ms = $2
             WHERE id = $3 AND current_phase = $4 AND state = 'running'",
        )
        .bind(to)
        .bind(now)
        .bind(id)
        .bind(from)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives every device of phases up to `phase` that has no action yet its action. A device
    /// busy with another action is left for a later call. Returns how many were created.
    pub async fn assign_actions(&self, c: &Campaign, phase: i64, now: i64) -> StoreResult<usize> {
        let rows = sqlx::query(
            "SELECT controller_id FROM campaign_devices
             WHERE campaign_id = $1 AND phase <= $2 AND action_id IS NULL ORDER BY position",
        )
        .bind(c.id)
        .bind(phase)
        .fetch_all(&self.pool)
        .await?;
        let mut created = 0;
        for row in rows {
            let device: String = row.try_get("controller_id")?;
            let new = NewAction {
                controller_id: device.clone(),
                bundle_id: c.bundle_id,
                campaign_id: Some(c.id),
                download: c.download.clone(),
                update: c.update.clone(),
                window_start: c.window_start,
                window_duration: c.window_duration,
            };
            let mut tx = self.pool.begin().await?;
            let Some(action) = actions::insert_action(&mut tx, &new, now).await? else {
                continue;
            };
            let done = sqlx::query(
                "UPDATE campaign_devices SET action_id = $1
                 WHERE campaign_id = $2 AND controller_id = $3 AND action_id IS NULL",
            )
            .bind(action)
            .bind(c.id)
            .bind(&device)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                tx.commit().await?;
                created += 1;
            } // else another process assigned it: dropping `tx` rolls back our action.
        }
        Ok(created)
    }

    /// Ends a running or paused campaign: actions not yet fetched are canceled, started ones
    /// are asked to cancel. False when it had already ended.
    pub async fn cancel_campaign(&self, id: i64, now: i64) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE campaigns SET state = 'canceled', reason = 'canceled by the operator', updated_ms = $1
             WHERE id = $2 AND state IN ('running', 'paused')",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let rows =
            sqlx::query("SELECT id, status FROM actions WHERE campaign_id = $1 AND open = 1")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        for row in rows {
            let action: i64 = row.try_get("id")?;
            let status: String = row.try_get("status")?;
            if status == "scheduled" {
                actions::transition(
                    &mut tx,
                    action,
                    &[ActionStatus::Scheduled],
                    ActionStatus::Canceled,
                    now,
                )
                .await?;
                actions::log(
                    &mut tx,
                    action,
                    now,
                    "canceled before the device fetched it",
                )
                .await?;
            } else if status == "running" {
                actions::transition(
                    &mut tx,
                    action,
                    &[ActionStatus::Running],
                    ActionStatus::Canceling,
                    now,
                )
                .await?;
                actions::log(&mut tx, action, now, "cancel requested by the operator").await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Campaigns that may need to move on.
    pub async fn running_campaigns(&self) -> StoreResult<Vec<Campaign>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM campaigns WHERE state = 'running' ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(campaign).collect()
    }

    /// Whether a campaign is running (its scheduled actions may be handed out).
    pub async fn campaign_running(&self, id: i64) -> StoreResult<bool> {
        let row = sqlx::query("SELECT state FROM campaigns WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => r.try_get::<String, _>("state")? == "running",
            None => false,
        })
    }
}
