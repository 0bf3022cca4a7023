//! Devices: admission state, token, attributes, last seen.

use std::collections::BTreeMap;

use airlock_ddi::UpdateMode;
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreResult, from_json, to_json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceStatus {
    /// Seen with a token, waiting for an operator.
    Pending,
    Accepted,
    Rejected,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Pending => "pending",
            DeviceStatus::Accepted => "accepted",
            DeviceStatus::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(DeviceStatus::Pending),
            "accepted" => Some(DeviceStatus::Accepted),
            "rejected" => Some(DeviceStatus::Rejected),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    pub controller_id: String,
    pub name: String,
    #[serde(skip)]
    pub token_hash: Option<String>,
    pub status: DeviceStatus,
    pub created_ms: i64,
    pub last_seen_ms: Option<i64>,
    pub attributes: BTreeMap<String, String>,
    /// The server will ask the device for its attributes at the next poll.
    #[serde(skip)]
    pub attrs_requested: bool,
}

const COLUMNS: &str = "controller_id, name, token_hash, status, created_ms, last_seen_ms, attributes, attrs_requested";

fn device(row: &AnyRow) -> StoreResult<Device> {
    let status: String = row.try_get("status")?;
    let attrs: String = row.try_get("attributes")?;
    Ok(Device {
        controller_id: row.try_get("controller_id")?,
        name: row.try_get("name")?,
        token_hash: row.try_get("token_hash")?,
        status: DeviceStatus::parse(&status)
            .ok_or_else(|| super::StoreError::Corrupt(format!("device status {status:?}")))?,
        created_ms: row.try_get("created_ms")?,
        last_seen_ms: row.try_get("last_seen_ms")?,
        attributes: from_json(&attrs, "device attributes")?,
        attrs_requested: row.try_get::<i64, _>("attrs_requested")? != 0,
    })
}

impl Store {
    /// Inserts a device unless one with that id exists; returns whether it was inserted.
    pub async fn insert_device(
        &self,
        controller_id: &str,
        name: &str,
        token_hash: Option<&str>,
        status: DeviceStatus,
        now: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO devices (controller_id, name, token_hash, status, created_ms, last_seen_ms, attributes, attrs_requested)
             VALUES ($1, $2, $3, $4, $5, NULL, '{}', 1) ON CONFLICT DO NOTHING",
        )
        .bind(controller_id)
        .bind(name)
        .bind(token_hash)
        .bind(status.as_str())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn device(&self, controller_id: &str) -> StoreResult<Option<Device>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM devices WHERE controller_id = $1"
        ))
        .bind(controller_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref()
            .map(|r| device(r).map(|d| self.with_seen(d)))
            .transpose()
    }

    /// The device with the last-seen time of a poll not yet written.
    fn with_seen(&self, mut d: Device) -> Device {
        if let Some(t) = self.seen.pending(&d.controller_id) {
            d.last_seen_ms = Some(d.last_seen_ms.map_or(t, |old| old.max(t)));
        }
        d
    }

    /// All devices, ordered by controller id.
    pub async fn devices(&self) -> StoreResult<Vec<Device>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM devices ORDER BY controller_id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| device(r).map(|d| self.with_seen(d)))
            .collect()
    }

    /// Sets the admission status; false when the device does not exist.
    pub async fn set_device_status(&self, id: &str, status: DeviceStatus) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE devices SET status = $1 WHERE controller_id = $2")
            .bind(status.as_str())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes a device with its actions, logs and static group memberships.
    pub async fn delete_device(&self, id: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM action_log WHERE action_id IN (SELECT id FROM actions WHERE controller_id = $1)")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for sql in [
            "DELETE FROM actions WHERE controller_id = $1",
            "DELETE FROM group_members WHERE controller_id = $1",
            "DELETE FROM campaign_devices WHERE controller_id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        let done = sqlx::query("DELETE FROM devices WHERE controller_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a poll; written with the next [`Store::flush_seen`].
    pub fn touch_device(&self, id: &str, now: i64) {
        self.seen.record(id, now);
    }

    /// Asks the device for its attributes at its next poll.
    pub async fn request_attributes(&self, id: &str) -> StoreResult<()> {
        sqlx::query("UPDATE devices SET attrs_requested = 1 WHERE controller_id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Applies a `configData` update. Only the device itself writes its attributes, so the
    /// read-modify-write needs no more than a transaction.
    pub async fn update_attributes(
        &self,
        id: &str,
        mode: UpdateMode,
        data: &BTreeMap<String, String>,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let Some(row) = sqlx::query("SELECT attributes FROM devices WHERE controller_id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(false);
        };
        let mut attrs: BTreeMap<String, String> = from_json(
            &row.try_get::<String, _>("attributes")?,
            "device attributes",
        )?;
        match mode {
            UpdateMode::Merge => attrs.extend(data.clone()),
            UpdateMode::Replace => attrs = data.clone(),
            UpdateMode::Remove => attrs.retain(|k, _| !data.contains_key(k)),
        }
        sqlx::query(
            "UPDATE devices SET attributes = $1, attrs_requested = 0 WHERE controller_id = $2",
        )
        .bind(to_json(&attrs))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}
