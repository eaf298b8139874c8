//! Shared secrets and node id leases.

use super::{PostgresStore, pg};
use crate::store::{NodeRecord, Nodes, StoreResult};
use async_trait::async_trait;
use confab_proto::Timestamp;

#[async_trait]
impl Nodes for PostgresStore {
    async fn shared_secret(&self, name: &str, candidate: &str) -> StoreResult<String> {
        self.with_client(|client| async move {
            // The insert either stores the candidate or, when another node got there first
            // (committed or not), leaves theirs; the select then sees the one that stands.
            client
                .execute(
                    "INSERT INTO shared_secrets (name, value) VALUES ($1, $2)
                 ON CONFLICT (name) DO NOTHING",
                    &[&name, &candidate],
                )
                .await
                .map_err(pg)?;
            Ok(client
                .query_one("SELECT value FROM shared_secrets WHERE name = $1", &[&name])
                .await
                .map_err(pg)?
                .get(0))
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
        let (low, high) = wanted.map_or((0, 1023), |id| (i32::from(id), i32::from(id)));
        self.with_client(|client| async move {
            // Two nodes picking the same free id at once: the second's insert meets the first's
            // row, whose lease is live, so its conditional update does nothing and it gets no
            // row; it asks again and takes the next id.
            for _ in 0..16 {
                let claimed = client
                    .query_opt(
                        "INSERT INTO node_leases (node_id, holder, expires_at)
                     SELECT id, $3, $5 FROM generate_series($1::int, $2::int) AS id
                     WHERE NOT EXISTS (SELECT 1 FROM node_leases l
                                       WHERE l.node_id = id AND l.expires_at > $4)
                     ORDER BY id LIMIT 1
                     ON CONFLICT (node_id) DO UPDATE SET
                       holder = excluded.holder, expires_at = excluded.expires_at
                       WHERE node_leases.expires_at <= $4
                     RETURNING node_id",
                        &[&low, &high, &holder, &now.0, &until.0],
                    )
                    .await
                    .map_err(pg)?;
                if let Some(row) = claimed {
                    return Ok(u16::try_from(row.get::<_, i32>(0)).ok());
                }
                let free: bool = client
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM generate_series($1::int, $2::int) AS id
                     WHERE NOT EXISTS (SELECT 1 FROM node_leases l
                                       WHERE l.node_id = id AND l.expires_at > $3))",
                        &[&low, &high, &now.0],
                    )
                    .await
                    .map_err(pg)?
                    .get(0);
                if !free {
                    return Ok(None);
                }
            }
            Ok(None)
        })
        .await
    }

    async fn renew_node_id(&self, id: u16, holder: &str, until: Timestamp) -> StoreResult<bool> {
        self.with_client(|client| async move {
            Ok(client
                .execute(
                    "UPDATE node_leases SET expires_at = $3 WHERE node_id = $1 AND holder = $2",
                    &[&i32::from(id), &holder, &until.0],
                )
                .await
                .map_err(pg)?
                > 0)
        })
        .await
    }

    async fn release_node_id(&self, id: u16, holder: &str) -> StoreResult<()> {
        self.with_client(|client| async move {
            client
                .execute(
                    "DELETE FROM node_leases WHERE node_id = $1 AND holder = $2",
                    &[&i32::from(id), &holder],
                )
                .await
                .map_err(pg)?;
            Ok(())
        })
        .await
    }

    async fn put_node(&self, node: &NodeRecord, forget_before: Timestamp) -> StoreResult<()> {
        self.with_client(|client| async move {
            client
                .execute(
                    "INSERT INTO nodes (holder, node_id, url, region, load, draining, renewed_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (holder) DO UPDATE SET node_id = excluded.node_id,
                       url = excluded.url, region = excluded.region, load = excluded.load,
                       draining = excluded.draining, renewed_at = excluded.renewed_at",
                    &[
                        &node.holder,
                        &i32::from(node.node_id),
                        &node.url,
                        &node.region,
                        &i32::try_from(node.load).unwrap_or(i32::MAX),
                        &node.draining,
                        &node.renewed_at.0,
                    ],
                )
                .await
                .map_err(pg)?;
            client
                .execute(
                    "DELETE FROM nodes WHERE renewed_at < $1",
                    &[&forget_before.0],
                )
                .await
                .map_err(pg)?;
            Ok(())
        })
        .await
    }

    async fn nodes(&self, after: Timestamp) -> StoreResult<Vec<NodeRecord>> {
        self.with_client(|client| async move {
            let rows = client
                .query(
                    "SELECT holder, node_id, url, region, load, draining, renewed_at
                     FROM nodes WHERE renewed_at > $1 ORDER BY node_id",
                    &[&after.0],
                )
                .await
                .map_err(pg)?;
            Ok(rows
                .iter()
                .map(|r| NodeRecord {
                    holder: r.get(0),
                    node_id: u16::try_from(r.get::<_, i32>(1)).unwrap_or_default(),
                    url: r.get(2),
                    region: r.get(3),
                    load: u32::try_from(r.get::<_, i32>(4)).unwrap_or_default(),
                    draining: r.get(5),
                    renewed_at: Timestamp(r.get(6)),
                })
                .collect())
        })
        .await
    }
}
