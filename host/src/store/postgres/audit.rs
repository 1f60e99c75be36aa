//! The audit chains in SQL, as the SQLite backend's `audit` module has
//! them. An append takes the chain's advisory lock with its head, so two
//! replicas never take the same head.

use tokio_postgres::types::ToSql;

use super::conn::{Deferred, PgConn};
use super::values::{col, unsigned};
use crate::audit::{AuditEntry, AuditRecord, ChainVerifier, GENESIS_HASH, VerifyReport};
use crate::store::StoreError;
use crate::store::columns::AUDIT as COLUMNS;
use crate::store::columns::audit_entry as decode;
use crate::store::rows::AuditFilter;

/// Inserts one entry; `$8` (the workflow) also gives its `wid`.
const INSERT: &str = "INSERT INTO audit_log (chain, seq, at, tenant, org, actor, kind, workflow_id,
        step_id, decision, reason, details, prev_hash, hash, wid)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
            (SELECT wid FROM workflows WHERE workflow_id = $8))";

/// Entries a chain walk reads at a time.
const VERIFY_PAGE: i64 = 1_000;

/// Appends `record` to `chain` on its head: the next `seq`, hashed onto
/// the head's hash.
pub(super) fn append(
    tx: &PgConn,
    lock: (i32, &str),
    record: AuditRecord,
) -> Result<AuditEntry, StoreError> {
    let chain = lock.1;
    if record.tenant != chain {
        return Err(StoreError::wrong_chain(chain, &record.tenant));
    }
    let head = tx
        .query_locked(
            lock,
            "SELECT seq, hash FROM audit_log WHERE chain = $1 ORDER BY seq DESC LIMIT 1",
            &[&chain],
            "reading the audit chain's head",
        )?
        .into_iter()
        .next();
    let (last_seq, prev_hash) = match head {
        Some(row) => (col::<i64>(&row, 0)?, col::<String>(&row, 1)?),
        None => (0, GENESIS_HASH.to_owned()),
    };
    let seq = u64::try_from(last_seq + 1).map_err(|_| corrupt("audit seq", last_seq))?;
    let entry = record.seal(seq, &prev_hash);
    let details =
        serde_json::to_string(&entry.record.details).map_err(|error| StoreError::Invalid {
            what: "audit details",
            detail: error.to_string(),
        })?;
    let decision = entry.record.decision.map(|d| d.as_str());
    // Deferred: the insert goes out with the COMMIT (or the next
    // statement), so the chain's lock is held one round trip less.
    let text = |value: &Option<String>| value.clone();
    tx.defer(Deferred::Insert {
        sql: INSERT,
        args: vec![
            Box::new(chain.to_owned()),
            Box::new(last_seq + 1),
            Box::new(entry.record.at.clone()),
            Box::new(entry.record.tenant.clone()),
            Box::new(entry.record.org.clone()),
            Box::new(entry.record.actor.clone()),
            Box::new(entry.record.kind.clone()),
            Box::new(text(&entry.record.workflow_id)),
            Box::new(text(&entry.record.step_id)),
            Box::new(decision),
            Box::new(text(&entry.record.reason)),
            Box::new(details),
            Box::new(entry.prev_hash.clone()),
            Box::new(entry.hash.clone()),
        ],
    });
    Ok(entry)
}

/// A page of `chain`'s entries matching `filter`, ascending `seq`, and how
/// many match in all.
pub(super) fn list(
    conn: &PgConn,
    chain: &str,
    filter: &AuditFilter,
) -> Result<(Vec<AuditEntry>, u64), StoreError> {
    let since = filter.since_stored();
    let mut conditions = String::from("chain = $1");
    let mut args: Vec<&(dyn ToSql + Sync)> = vec![&chain];
    match (&filter.workflow_id, &filter.org) {
        (Some(workflow_id), None) => {
            let id = bind(&mut args, workflow_id);
            conditions.push_str(&format!(
                " AND wid = (SELECT wid FROM workflows WHERE workflow_id = {id})"
            ));
        }
        // Another org's workflow is as unknown as a missing one.
        (Some(workflow_id), Some(org)) => {
            let (id, org) = (bind(&mut args, workflow_id), bind(&mut args, org));
            conditions.push_str(&format!(
                " AND wid = (SELECT wid FROM workflows WHERE workflow_id = {id} AND org = {org})"
            ));
        }
        (None, Some(org)) => {
            let org = bind(&mut args, org);
            conditions.push_str(&format!(
                " AND (workflow_id IS NULL \
                 OR wid IN (SELECT wid FROM workflows WHERE tenant = $1 AND org = {org}))"
            ));
        }
        (None, None) => {}
    }
    if let Some(kind) = &filter.kind {
        let kind = bind(&mut args, kind);
        conditions.push_str(&format!(" AND kind = {kind}"));
    }
    if let Some(since) = &since {
        let since = bind(&mut args, since);
        conditions.push_str(&format!(" AND at >= {since}"));
    }
    let total = conn.query_one(
        &format!("SELECT count(*) FROM audit_log WHERE {conditions}"),
        &args,
        "counting audit entries",
    )?;
    let (limit, offset) = (
        i64::from(filter.limit),
        i64::try_from(filter.offset).unwrap_or(i64::MAX),
    );
    let page = format!(
        "LIMIT {} OFFSET {}",
        bind(&mut args, &limit),
        bind(&mut args, &offset)
    );
    let entries = conn
        .query(
            &format!("SELECT {COLUMNS} FROM audit_log WHERE {conditions} ORDER BY seq {page}"),
            &args,
            "listing audit entries",
        )?
        .iter()
        .map(decode)
        .collect::<Result<_, _>>()?;
    Ok((entries, unsigned(col(&total, 0)?)))
}

/// Walks `chain` from `seq` 1 (contract §7), a page at a time so a long
/// chain is never held in memory. An entry whose stored values do not
/// decode counts as the first bad one.
pub(super) fn verify_chain(conn: &PgConn, chain: &str) -> Result<VerifyReport, StoreError> {
    let mut verifier = ChainVerifier::new();
    let mut after = 0_i64;
    loop {
        let rows = conn.query(
            &format!(
                "SELECT {COLUMNS} FROM audit_log WHERE chain = $1 AND seq > $2 \
                 ORDER BY seq LIMIT $3"
            ),
            &[&chain, &after, &VERIFY_PAGE],
            "reading the audit chain",
        )?;
        for row in &rows {
            let seq: i64 = col(row, 0)?;
            let good = match decode(row) {
                Ok(entry) => verifier.check(&entry),
                Err(_) => {
                    verifier.unreadable(unsigned(seq));
                    false
                }
            };
            if !good {
                return Ok(verifier.report());
            }
            after = seq;
        }
        if rows.len() < VERIFY_PAGE as usize {
            return Ok(verifier.report());
        }
    }
}

/// Every chain with at least one entry, in name order.
pub(super) fn chains(conn: &PgConn) -> Result<Vec<String>, StoreError> {
    conn.query(
        "SELECT DISTINCT chain FROM audit_log ORDER BY chain",
        &[],
        "listing audit chains",
    )?
    .iter()
    .map(|row| col(row, 0))
    .collect()
}

/// Adds `value` to `args`; returns its placeholder.
fn bind<'a>(args: &mut Vec<&'a (dyn ToSql + Sync)>, value: &'a (dyn ToSql + Sync)) -> String {
    args.push(value);
    format!("${}", args.len())
}

fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: detail.to_string(),
    }
}
