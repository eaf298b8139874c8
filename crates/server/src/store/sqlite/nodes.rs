//! Shared secrets and node id leases. One node uses an embedded store, but the claims work
//! as on PostgreSQL, so a second process on the same data directory cannot take the id.

use super::SqliteStore;
use crate::store::{NodeRecord, Nodes, StoreResult};
use async_trait::async_trait;
use confab_proto::Timestamp;
use deadpool_sqlite::rusqlite::{OptionalExtension, params};

#[async_trait]
impl Nodes for SqliteStore {
    async fn shared_secret(&self, name: &str, candidate: &str) -> StoreResult<String> {
        let (name, candidate) = (name.to_owned(), candidate.to_owned());
        self.writer
            .write(move |tx| {
                tx.conn
                    .prepare_cached(
                        "INSERT INTO shared_secrets (name, value) VALUES (?1, ?2)
                         ON CONFLICT (name) DO NOTHING",
                    )?
                    .execute(params![name, candidate])?;
                Ok(tx
                    .conn
                    .prepare_cached("SELECT value FROM shared_secrets WHERE name = ?1")?
                    .query_row([name], |r| r.get(0))?)
            })
            .await
    }

    async fn claim_node_id(
        &self,
        holder: &str,
        wanted: Option<u16>,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<Option<u16>> {
        let holder = holder.to_owned();
        self.writer
            .write(move |tx| {
                let (low, high) = wanted.map_or((0, 1023), |id| (id, id));
                Ok(tx
                    .conn
                    .prepare_cached(
                        "WITH RECURSIVE ids(id) AS (SELECT ?1 UNION ALL SELECT id + 1 FROM ids WHERE id < ?2)
                         INSERT INTO node_leases (node_id, holder, expires_at)
                         SELECT id, ?3, ?5 FROM ids
                         WHERE NOT EXISTS (SELECT 1 FROM node_leases l
                                           WHERE l.node_id = ids.id AND l.expires_at > ?4)
                         ORDER BY id LIMIT 1
                         ON CONFLICT (node_id) DO UPDATE SET
                           holder = excluded.holder, expires_at = excluded.expires_at
                         RETURNING node_id",
                    )?
                    .query_row(params![low, high, holder, now.0, until.0], |r| r.get(0))
                    .optional()?)
            })
            .await
    }

    async fn renew_node_id(&self, id: u16, holder: &str, until: Timestamp) -> StoreResult<bool> {
        let holder = holder.to_owned();
        self.writer
            .write(move |tx| {
                Ok(tx
                    .conn
                    .prepare_cached(
                        "UPDATE node_leases SET expires_at = ?3 WHERE node_id = ?1 AND holder = ?2",
                    )?
                    .execute(params![id, holder, until.0])?
                    > 0)
            })
            .await
    }

    async fn release_node_id(&self, id: u16, holder: &str) -> StoreResult<()> {
        let holder = holder.to_owned();
        self.writer
            .write(move |tx| {
                tx.conn
                    .prepare_cached("DELETE FROM node_leases WHERE node_id = ?1 AND holder = ?2")?
                    .execute(params![id, holder])?;
                Ok(())
            })
            .await
    }

    async fn put_node(&self, node: &NodeRecord, forget_before: Timestamp) -> StoreResult<()> {
        let node = node.clone();
        self.writer
            .write(move |tx| {
                tx.conn
                    .prepare_cached(
                        "INSERT INTO nodes (holder, node_id, url, region, load, draining, renewed_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         ON CONFLICT (holder) DO UPDATE SET node_id = excluded.node_id,
                           url = excluded.url, region = excluded.region, load = excluded.load,
                           draining = excluded.draining, renewed_at = excluded.renewed_at",
                    )?
                    .execute(params![
                        node.holder,
                        node.node_id,
                        node.url,
                        node.region,
                        node.load,
                        node.draining,
                        node.renewed_at.0
                    ])?;
                tx.conn
                    .prepare_cached("DELETE FROM nodes WHERE renewed_at < ?1")?
                    .execute([forget_before.0])?;
                Ok(())
            })
            .await
    }

    async fn nodes(&self, after: Timestamp) -> StoreResult<Vec<NodeRecord>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT holder, node_id, url, region, load, draining, renewed_at
                 FROM nodes WHERE renewed_at > ?1 ORDER BY node_id",
            )?;
            let rows = stmt.query_map([after.0], |r| {
                Ok(NodeRecord {
                    holder: r.get(0)?,
                    node_id: r.get(1)?,
                    url: r.get(2)?,
                    region: r.get(3)?,
                    load: r.get(4)?,
                    draining: r.get(5)?,
                    renewed_at: Timestamp(r.get(6)?),
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
