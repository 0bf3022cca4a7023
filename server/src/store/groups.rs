//! Groups: a static list of devices, or a filter over attributes (resolved by the caller).

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreResult};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub id: i64,
    pub name: String,
    /// `None` for a static group.
    pub filter: Option<String>,
    pub created_ms: i64,
}

fn group(row: &AnyRow) -> StoreResult<Group> {
    Ok(Group {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        filter: row.try_get("filter")?,
        created_ms: row.try_get("created_ms")?,
    })
}

impl Store {
    /// Creates a group; `None` when the name is taken.
    pub async fn create_group(
        &self,
        name: &str,
        filter: Option<&str>,
        members: &[String],
        now: i64,
    ) -> StoreResult<Option<i64>> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "INSERT INTO device_groups (name, filter, created_ms) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(name)
        .bind(filter)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let id: i64 = row.try_get("id")?;
        for m in members {
            sqlx::query(
                "INSERT INTO group_members (group_id, controller_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(m)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Some(id))
    }

    pub async fn groups(&self) -> StoreResult<Vec<Group>> {
        let rows =
            sqlx::query("SELECT id, name, filter, created_ms FROM device_groups ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(group).collect()
    }

    pub async fn group(&self, name: &str) -> StoreResult<Option<Group>> {
        let row =
            sqlx::query("SELECT id, name, filter, created_ms FROM device_groups WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(group).transpose()
    }

    /// The static members of a group, sorted.
    pub async fn group_members(&self, group_id: i64) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT controller_id FROM group_members WHERE group_id = $1 ORDER BY controller_id",
        )
        .bind(group_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get("controller_id")?))
            .collect()
    }

    pub async fn add_group_member(&self, group_id: i64, controller_id: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO group_members (group_id, controller_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(group_id)
        .bind(controller_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn remove_group_member(
        &self,
        group_id: i64,
        controller_id: &str,
    ) -> StoreResult<bool> {
        let done =
            sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND controller_id = $2")
                .bind(group_id)
                .bind(controller_id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn delete_group(&self, group_id: i64) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM group_members WHERE group_id = $1")
            .bind(group_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM device_groups WHERE id = $1")
            .bind(group_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
