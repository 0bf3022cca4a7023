//! Actions: one update of one device to one bundle, with its log.

use serde::Serialize;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;
use sqlx::{Acquire, Row};

use super::{Store, StoreError, StoreResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionStatus {
    /// Created, not yet fetched by the device.
    Scheduled,
    /// Fetched; the device reports progress.
    Running,
    /// The operator canceled it after the device started; the device gets a cancelAction.
    Canceling,
    Succeeded,
    Failed,
    Canceled,
}

impl ActionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Scheduled => "scheduled",
            ActionStatus::Running => "running",
            ActionStatus::Canceling => "canceling",
            ActionStatus::Succeeded => "succeeded",
            ActionStatus::Failed => "failed",
            ActionStatus::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "scheduled" => ActionStatus::Scheduled,
            "running" => ActionStatus::Running,
            "canceling" => ActionStatus::Canceling,
            "succeeded" => ActionStatus::Succeeded,
            "failed" => ActionStatus::Failed,
            "canceled" => ActionStatus::Canceled,
            _ => return None,
        })
    }

    pub fn is_open(self) -> bool {
        matches!(
            self,
            ActionStatus::Scheduled | ActionStatus::Running | ActionStatus::Canceling
        )
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    pub id: i64,
    pub controller_id: String,
    pub bundle_id: i64,
    pub campaign_id: Option<i64>,
    pub status: ActionStatus,
    /// The last execution state the device reported (`proceeding`, `downloaded`, …).
    pub last_status: Option<String>,
    pub download: String,
    pub update: String,
    /// Maintenance window: start in minutes after midnight UTC, and length in minutes.
    pub window_start: Option<i64>,
    pub window_duration: Option<i64>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[derive(Debug, Clone)]
pub struct NewAction {
    pub controller_id: String,
    pub bundle_id: i64,
    pub campaign_id: Option<i64>,
    pub download: String,
    pub update: String,
    pub window_start: Option<i64>,
    pub window_duration: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogLine {
    pub ts_ms: i64,
    pub message: String,
}

/// What became of a feedback message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedbackOutcome {
    /// Logged; `true` when the action closed with it.
    Applied(bool),
    /// The action is this device's but already closed; nothing changed.
    AlreadyClosed,
    /// No such action for this device.
    NotFound,
}

const COLUMNS: &str = "id, controller_id, bundle_id, campaign_id, status, last_status, download, update_handling, window_start, window_duration, created_ms, updated_ms";

fn action(row: &AnyRow) -> StoreResult<Action> {
    let status: String = row.try_get("status")?;
    Ok(Action {
        id: row.try_get("id")?,
        controller_id: row.try_get("controller_id")?,
        bundle_id: row.try_get("bundle_id")?,
        campaign_id: row.try_get("campaign_id")?,
        status: ActionStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("action status {status:?}")))?,
        last_status: row.try_get("last_status")?,
        download: row.try_get("download")?,
        update: row.try_get("update_handling")?,
        window_start: row.try_get("window_start")?,
        window_duration: row.try_get("window_duration")?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
    })
}

/// Inserts an open action unless the device already has one (then `None`).
pub(super) async fn insert_action(
    conn: &mut AnyConnection,
    a: &NewAction,
    now: i64,
) -> StoreResult<Option<i64>> {
    let row = sqlx::query(
        "INSERT INTO actions (controller_id, bundle_id, campaign_id, status, open, last_status, download, update_handling, window_start, window_duration, created_ms, updated_ms)
         VALUES ($1, $2, $3, 'scheduled', 1, NULL, $4, $5, $6, $7, $8, $8)
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(&a.controller_id)
    .bind(a.bundle_id)
    .bind(a.campaign_id)
    .bind(&a.download)
    .bind(&a.update)
    .bind(a.window_start)
    .bind(a.window_duration)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let id: i64 = row.try_get("id")?;
    log(conn, id, now, "action created").await?;
    Ok(Some(id))
}

pub(super) async fn log(
    conn: &mut AnyConnection,
    action_id: i64,
    now: i64,
    message: &str,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO action_log (action_id, ts_ms, message) VALUES ($1, $2, $3)")
        .bind(action_id)
        .bind(now)
        .bind(message)
        .execute(conn)
        .await?;
    Ok(())
}

/// Moves open action `id` to `to`, closing it when `to` is final; false if it was not open
/// (or not in `from`, when given).
pub(super) async fn transition(
    conn: &mut AnyConnection,
    id: i64,
    from: &[ActionStatus],
    to: ActionStatus,
    now: i64,
) -> StoreResult<bool> {
    let open: Option<i64> = to.is_open().then_some(1);
    let from: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
    let sql = format!(
        "UPDATE actions SET status = $1, open = $2, updated_ms = $3 WHERE id = $4 AND open = 1 AND status IN ({})",
        from.join(", ")
    );
    let done = sqlx::query(&sql)
        .bind(to.as_str())
        .bind(open)
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

impl Store {
    /// A one-off action outside any campaign; `None` when the device already has an open one.
    pub async fn create_action(&self, a: &NewAction, now: i64) -> StoreResult<Option<i64>> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let id = insert_action(&mut tx, a, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn action(&self, id: i64) -> StoreResult<Option<Action>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM actions WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(action).transpose()
    }

    /// The device's open action, if any.
    pub async fn open_action(&self, controller_id: &str) -> StoreResult<Option<Action>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM actions WHERE controller_id = $1 AND open = 1"
        ))
        .bind(controller_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(action).transpose()
    }

    /// The device's actions, newest first.
    pub async fn actions_of(&self, controller_id: &str) -> StoreResult<Vec<Action>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM actions WHERE controller_id = $1 ORDER BY id DESC"
        ))
        .bind(controller_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(action).collect()
    }

    /// Whether the device has ever been given an action for this bundle.
    pub async fn device_has_bundle(
        &self,
        controller_id: &str,
        bundle_id: i64,
    ) -> StoreResult<bool> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM actions WHERE controller_id = $1 AND bundle_id = $2",
        )
        .bind(controller_id)
        .bind(bundle_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// Failed actions per device.
    pub async fn failure_count(&self, controller_id: &str) -> StoreResult<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM actions WHERE controller_id = $1 AND status = 'failed'",
        )
        .bind(controller_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    pub async fn action_log(&self, action_id: i64) -> StoreResult<Vec<LogLine>> {
        let rows =
            sqlx::query("SELECT ts_ms, message FROM action_log WHERE action_id = $1 ORDER BY id")
                .bind(action_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(LogLine {
                    ts_ms: r.try_get("ts_ms")?,
                    message: r.try_get("message")?,
                })
            })
            .collect()
    }

    /// The device fetched its deployment: scheduled → running.
    pub async fn mark_fetched(&self, id: i64, now: i64) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        if transition(
            &mut tx,
            id,
            &[ActionStatus::Scheduled],
            ActionStatus::Running,
            now,
        )
        .await?
        {
            log(&mut tx, id, now, "device retrieved the action").await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records device feedback on action `id` of `controller_id`: the action moves from one of
    /// `change.0` to `change.1` (when given) and `messages` are appended to its log.
    pub async fn record_feedback(
        &self,
        controller_id: &str,
        id: i64,
        change: Option<(&[ActionStatus], ActionStatus)>,
        last_status: &str,
        messages: &[String],
        now: i64,
    ) -> StoreResult<FeedbackOutcome> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let Some(row) =
            sqlx::query("SELECT status FROM actions WHERE id = $1 AND controller_id = $2")
                .bind(id)
                .bind(controller_id)
                .fetch_optional(&mut *tx)
                .await?
        else {
            return Ok(FeedbackOutcome::NotFound);
        };
        let status: String = row.try_get("status")?;
        let current = ActionStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("action status {status:?}")))?;
        if !current.is_open() {
            return Ok(FeedbackOutcome::AlreadyClosed);
        }
        let mut closed = false;
        if let Some((from, to)) = change {
            closed = transition(&mut tx, id, from, to, now).await? && !to.is_open();
        }
        sqlx::query("UPDATE actions SET last_status = $1, updated_ms = $2 WHERE id = $3")
            .bind(last_status)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // One line per report: its status, then what the device said.
        let line = if messages.is_empty() {
            format!("device: {last_status}")
        } else {
            format!("device: {last_status}: {}", messages.join("; "))
        };
        log(&mut tx, id, now, &line).await?;
        if closed {
            // A finished action changes what the device runs: ask for fresh attributes.
            sqlx::query("UPDATE devices SET attrs_requested = 1 WHERE controller_id = $1")
                .bind(controller_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(FeedbackOutcome::Applied(closed))
    }

    /// The last action of the device that succeeded (what it has installed).
    pub async fn installed_action(&self, controller_id: &str) -> StoreResult<Option<Action>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM actions WHERE controller_id = $1 AND status = 'succeeded' ORDER BY id DESC LIMIT 1"
        ))
        .bind(controller_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(action).transpose()
    }
}

impl Store {
    /// Failed actions per device, for every device that has any.
    pub async fn failure_counts(&self) -> StoreResult<std::collections::HashMap<String, i64>> {
        let rows = sqlx::query(
            "SELECT controller_id, COUNT(*) AS n FROM actions WHERE status = 'failed' GROUP BY controller_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("controller_id")?, r.try_get("n")?)))
            .collect()
    }
}

/// What the server's own records say a device last finished: for devices that report no
/// `airlock.*` attributes (a DDI client other than Airlock's daemon).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Finished {
    /// The version of the bundle of the last deployment that succeeded.
    pub installed: Option<String>,
    /// How the last deployment ended: `succeeded acme-os 1.3.0`, `failed acme-os 1.4.0`.
    pub last_result: Option<String>,
}

impl Store {
    /// [`Finished`] of every device with a finished deployment, or of `controller_id` alone.
    pub async fn finished(
        &self,
        controller_id: Option<&str>,
    ) -> StoreResult<std::collections::HashMap<String, Finished>> {
        let only = if controller_id.is_some() {
            "AND controller_id = $1"
        } else {
            ""
        };
        // The last succeeded and the last finished action of each device: one or two rows each.
        let sql = format!(
            "SELECT a.id, a.controller_id, a.status, b.name, b.version
             FROM actions a JOIN bundles b ON b.id = a.bundle_id
             WHERE a.id IN (SELECT MAX(id) FROM actions
                            WHERE status IN ('succeeded', 'failed', 'canceled') {only}
                            GROUP BY controller_id)
                OR a.id IN (SELECT MAX(id) FROM actions WHERE status = 'succeeded' {only}
                            GROUP BY controller_id)
             ORDER BY a.id"
        );
        let mut query = sqlx::query(&sql);
        if let Some(id) = controller_id {
            query = query.bind(id);
        }
        let mut out: std::collections::HashMap<String, Finished> = Default::default();
        for row in query.fetch_all(&self.pool).await? {
            let status: String = row.try_get("status")?;
            let (name, version): (String, String) = (row.try_get("name")?, row.try_get("version")?);
            let f = out.entry(row.try_get("controller_id")?).or_default();
            if status == "succeeded" {
                f.installed = Some(version.clone());
            }
            // Rows come oldest first: the last one is the last finished.
            f.last_result = Some(format!("{status} {name} {version}"));
        }
        Ok(out)
    }
}
