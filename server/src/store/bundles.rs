//! Bundles: verified uploads (and artifacts of other updaters), stored as files named by their
//! SHA-256.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreResult, from_json, to_json};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    pub id: i64,
    pub name: String,
    pub version: String,
    pub compatible: Vec<String>,
    /// The artifact's file name as devices see it.
    pub filename: String,
    pub size: i64,
    pub sha256: String,
    /// Ids of the trusted keys whose signatures verified.
    pub signers: Vec<String>,
    pub uploaded_ms: i64,
    /// `airlock`: a bundle the server verified; `foreign`: an artifact of another updater
    /// (SWUpdate's `.swu`, …), kept as uploaded, which the device's own updater must verify.
    pub kind: &'static str,
}

#[derive(Debug, Clone)]
pub struct NewBundle {
    pub name: String,
    pub version: String,
    pub compatible: Vec<String>,
    pub filename: String,
    pub size: i64,
    pub sha256: String,
    pub signers: Vec<String>,
}

const COLUMNS: &str = "id, name, version, compatible, filename, size, sha256, signers, uploaded_ms";

fn bundle(row: &AnyRow) -> StoreResult<Bundle> {
    let signers: Vec<String> = from_json(&row.try_get::<String, _>("signers")?, "bundle signers")?;
    Ok(Bundle {
        // A verified bundle has at least one signer; an artifact of another updater none.
        kind: if signers.is_empty() {
            "foreign"
        } else {
            "airlock"
        },
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        compatible: from_json(
            &row.try_get::<String, _>("compatible")?,
            "bundle compatible",
        )?,
        filename: row.try_get("filename")?,
        size: row.try_get("size")?,
        sha256: row.try_get("sha256")?,
        signers,
        uploaded_ms: row.try_get("uploaded_ms")?,
    })
}

impl Store {
    /// Records a bundle; `None` when one with the same content exists.
    pub async fn insert_bundle(&self, b: &NewBundle, now: i64) -> StoreResult<Option<i64>> {
        let row = sqlx::query(
            "INSERT INTO bundles (name, version, compatible, filename, size, sha256, signers, uploaded_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(&b.name)
        .bind(&b.version)
        .bind(to_json(&b.compatible))
        .bind(&b.filename)
        .bind(b.size)
        .bind(&b.sha256)
        .bind(to_json(&b.signers))
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.try_get("id")).transpose().map_err(Into::into)
    }

    pub async fn bundles(&self) -> StoreResult<Vec<Bundle>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM bundles ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(bundle).collect()
    }

    pub async fn bundle(&self, id: i64) -> StoreResult<Option<Bundle>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM bundles WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(bundle).transpose()
    }

    pub async fn bundle_by_sha256(&self, sha256: &str) -> StoreResult<Option<Bundle>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM bundles WHERE sha256 = $1"))
            .bind(sha256)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(bundle).transpose()
    }

    /// The SHA-1 and MD5 (hex) of the artifact with SHA-256 `sha256`, once recorded.
    pub async fn artifact_hashes(&self, sha256: &str) -> StoreResult<Option<(String, String)>> {
        let row = sqlx::query("SELECT sha1, md5 FROM artifact_hashes WHERE sha256 = $1")
            .bind(sha256)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get("sha1")?, r.try_get("md5")?)))
            .transpose()
    }

    /// Records the SHA-1 and MD5 of the artifact with SHA-256 `sha256` (idempotent).
    pub async fn set_artifact_hashes(
        &self,
        sha256: &str,
        sha1: &str,
        md5: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO artifact_hashes (sha256, sha1, md5) VALUES ($1, $2, $3)
             ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(sha256)
        .bind(sha1)
        .bind(md5)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes a bundle no campaign or action refers to; false when it is in use.
    pub async fn delete_bundle_if_unused(&self, id: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "DELETE FROM bundles WHERE id = $1
             AND NOT EXISTS (SELECT 1 FROM actions WHERE bundle_id = $1)
             AND NOT EXISTS (SELECT 1 FROM campaigns WHERE bundle_id = $1)",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
