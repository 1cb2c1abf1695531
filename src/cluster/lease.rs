//! The lease queries over `notebook_leases` (PostgreSQL only; SQLite is single-instance).
//!
//! Expiry is judged by the database's clock alone (`now()` in UTC), so instances whose clocks
//! disagree still agree on who holds a lease.

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Text, Timestamp};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::db::schema::notebook_leases;

/// The database's current time in UTC, as stored in `expires_at`.
const NOW_UTC: &str = "(now() AT TIME ZONE 'UTC')";

/// The instance holding a live lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Its instance id.
    pub instance_id: String,
    /// The address other instances reach it at.
    pub url: String,
}

#[derive(QueryableByName)]
struct EpochRow {
    #[diesel(sql_type = BigInt)]
    epoch: i64,
}

/// Takes the lease of `notebook_id` for this instance when it is free, expired or already
/// ours, answering the new epoch (one more than the row's last, so a room opened before can
/// never write under it); `None` while another instance holds it.
pub async fn acquire(
    c: &mut AsyncPgConnection,
    notebook_id: &str,
    me: &Holder,
    lease_secs: u64,
) -> QueryResult<Option<i64>> {
    let query = format!(
        "INSERT INTO notebook_leases (notebook_id, instance_id, instance_url, epoch, expires_at) \
         VALUES ($1, $2, $3, 1, {NOW_UTC} + make_interval(secs => $4)) \
         ON CONFLICT (notebook_id) DO UPDATE SET \
             epoch = notebook_leases.epoch + 1, \
             instance_id = EXCLUDED.instance_id, \
             instance_url = EXCLUDED.instance_url, \
             expires_at = EXCLUDED.expires_at \
         WHERE notebook_leases.instance_id = EXCLUDED.instance_id \
            OR notebook_leases.expires_at <= {NOW_UTC} \
         RETURNING epoch"
    );
    let rows: Vec<EpochRow> = diesel::sql_query(query)
        .bind::<Text, _>(notebook_id)
        .bind::<Text, _>(&me.instance_id)
        .bind::<Text, _>(&me.url)
        .bind::<Double, _>(lease_secs as f64)
        .load(c)
        .await?;
    Ok(rows.into_iter().next().map(|row| row.epoch))
}

/// Who holds an unexpired lease of `notebook_id`, if anyone.
pub async fn holder(c: &mut AsyncPgConnection, notebook_id: &str) -> QueryResult<Option<Holder>> {
    notebook_leases::table
        .find(notebook_id)
        .filter(notebook_leases::expires_at.gt(sql::<Timestamp>(NOW_UTC)))
        .select((notebook_leases::instance_id, notebook_leases::instance_url))
        .first::<(String, String)>(c)
        .await
        .optional()
        .map(|row| row.map(|(instance_id, url)| Holder { instance_id, url }))
}

/// Extends every listed lease this instance still holds, in one statement; answers the
/// `(notebook_id, epoch)` pairs renewed (a lease missing from them was taken over).
pub async fn renew(
    c: &mut AsyncPgConnection,
    instance_id: &str,
    notebook_ids: &[String],
    lease_secs: u64,
) -> QueryResult<Vec<(String, i64)>> {
    diesel::update(
        notebook_leases::table
            .filter(notebook_leases::instance_id.eq(instance_id))
            .filter(notebook_leases::notebook_id.eq_any(notebook_ids)),
    )
    .set(notebook_leases::expires_at.eq(sql::<Timestamp>(&format!(
        "{NOW_UTC} + make_interval(secs => {lease_secs})"
    ))))
    .returning((notebook_leases::notebook_id, notebook_leases::epoch))
    .get_results(c)
    .await
}

/// Expires this instance's lease of `notebook_id` at `epoch` now, so the next request for the
/// notebook can make any instance its owner without waiting; the epoch stays.
pub async fn release(
    c: &mut AsyncPgConnection,
    instance_id: &str,
    notebook_id: &str,
    epoch: i64,
) -> QueryResult<usize> {
    diesel::update(
        notebook_leases::table
            .find(notebook_id)
            .filter(notebook_leases::instance_id.eq(instance_id))
            .filter(notebook_leases::epoch.eq(epoch)),
    )
    .set(notebook_leases::expires_at.eq(sql::<Timestamp>(&format!(
        "{NOW_UTC} - interval '1 second'"
    ))))
    .execute(c)
    .await
}

/// Expires every lease this instance holds (a graceful shutdown hands them all over at once).
pub async fn release_all(c: &mut AsyncPgConnection, instance_id: &str) -> QueryResult<usize> {
    diesel::update(
        notebook_leases::table
            .filter(notebook_leases::instance_id.eq(instance_id))
            .filter(notebook_leases::expires_at.gt(sql::<Timestamp>(NOW_UTC))),
    )
    .set(notebook_leases::expires_at.eq(sql::<Timestamp>(&format!(
        "{NOW_UTC} - interval '1 second'"
    ))))
    .execute(c)
    .await
}
