//! The audit chains in SQL: append inside a write transaction, list, verify.
//! Hashing and verification rules live in [`crate::audit`].

use rusqlite::{Connection, Transaction, params_from_iter, types::Value as SqlValue};

use super::error::SqlContext;
use crate::audit::{AuditEntry, AuditRecord, ChainVerifier, GENESIS_HASH, VerifyReport};
use crate::store::StoreError;
use crate::store::columns::{AUDIT as COLUMNS, audit_entry as decode};
use crate::store::rows::AuditFilter;

/// Appends `record` to `chain`: takes the chain's head inside `tx` (the one
/// writer makes that race-free), assigns the next `seq`, hashes, inserts.
pub fn append(
    tx: &Transaction,
    chain: &str,
    record: AuditRecord,
) -> Result<AuditEntry, StoreError> {
    if record.tenant != chain {
        return Err(StoreError::wrong_chain(chain, &record.tenant));
    }
    let head: Option<(i64, String)> = tx
        .prepare_cached(
            "SELECT seq, hash FROM audit_log WHERE chain = ?1 ORDER BY seq DESC LIMIT 1",
        )
        .and_then(|mut stmt| {
            let mut rows = stmt.query([chain])?;
            rows.next()?
                .map(|row| Ok((row.get(0)?, row.get(1)?)))
                .transpose()
        })
        .context("reading the audit chain's head")?;
    let (last_seq, prev_hash) = head.unwrap_or((0, GENESIS_HASH.to_owned()));
    let seq = u64::try_from(last_seq + 1).map_err(|_| corrupt("audit seq", last_seq))?;
    let entry = record.seal(seq, &prev_hash);
    let details =
        serde_json::to_string(&entry.record.details).map_err(|error| StoreError::Invalid {
            what: "audit details",
            detail: error.to_string(),
        })?;
    tx.prepare_cached(
        "INSERT INTO audit_log (chain, seq, at, tenant, org, actor, kind, workflow_id, step_id,
                                decision, reason, details, prev_hash, hash, wid)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,
                 (SELECT wid FROM workflows WHERE workflow_id = ?8))",
    )
    .and_then(|mut stmt| {
        stmt.execute(rusqlite::params![
            chain,
            last_seq + 1,
            entry.record.at,
            entry.record.tenant,
            entry.record.org,
            entry.record.actor,
            entry.record.kind,
            entry.record.workflow_id,
            entry.record.step_id,
            entry.record.decision.map(|d| d.as_str()),
            entry.record.reason,
            details,
            entry.prev_hash,
            entry.hash,
        ])
    })
    .context("appending an audit entry")?;
    Ok(entry)
}

/// A page of `chain`'s entries matching `filter`, ascending `seq`, and how
/// many match in all. Run it inside one read (`Store::read`) so the two agree.
pub fn list(
    conn: &Connection,
    chain: &str,
    filter: &AuditFilter,
) -> Result<(Vec<AuditEntry>, u64), StoreError> {
    let mut conditions = String::from("chain = ?");
    let mut args = vec![SqlValue::Text(chain.to_owned())];
    match (&filter.workflow_id, &filter.org) {
        (Some(workflow_id), None) => {
            conditions.push_str(" AND wid = (SELECT wid FROM workflows WHERE workflow_id = ?)");
            args.push(SqlValue::Text(workflow_id.clone()));
        }
        // Another org's workflow is as unknown as a missing one.
        (Some(workflow_id), Some(org)) => {
            conditions.push_str(
                " AND wid = (SELECT wid FROM workflows WHERE workflow_id = ? AND org = ?)",
            );
            args.push(SqlValue::Text(workflow_id.clone()));
            args.push(SqlValue::Text(org.clone()));
        }
        (None, Some(org)) => {
            conditions.push_str(
                " AND (workflow_id IS NULL \
                 OR wid IN (SELECT wid FROM workflows WHERE tenant = ? AND org = ?))",
            );
            args.push(SqlValue::Text(chain.to_owned()));
            args.push(SqlValue::Text(org.clone()));
        }
        (None, None) => {}
    }
    if let Some(kind) = &filter.kind {
        conditions.push_str(" AND kind = ?");
        args.push(SqlValue::Text(kind.clone()));
    }
    if let Some(since) = filter.since_stored() {
        conditions.push_str(" AND at >= ?");
        args.push(SqlValue::Text(since));
    }
    let total: i64 = conn
        .prepare_cached(&format!(
            "SELECT count(*) FROM audit_log WHERE {conditions}"
        ))
        .and_then(|mut stmt| stmt.query_row(params_from_iter(&args), |row| row.get(0)))
        .context("counting audit entries")?;
    let offset = i64::try_from(filter.offset).unwrap_or(i64::MAX);
    args.push(SqlValue::Integer(i64::from(filter.limit)));
    args.push(SqlValue::Integer(offset));
    let sql =
        format!("SELECT {COLUMNS} FROM audit_log WHERE {conditions} ORDER BY seq LIMIT ? OFFSET ?");
    let mut stmt = conn.prepare_cached(&sql).context("listing audit entries")?;
    let mut rows = stmt
        .query(params_from_iter(&args))
        .context("listing audit entries")?;
    let mut entries = Vec::new();
    while let Some(row) = rows.next().context("listing audit entries")? {
        entries.push(decode(row)?);
    }
    Ok((entries, u64::try_from(total).unwrap_or(0)))
}

/// Walks `chain` from `seq` 1 (contract §7), streaming so a long chain is
/// never held in memory. An entry whose stored values do not even decode
/// counts as the first bad one.
pub fn verify_chain(conn: &Connection, chain: &str) -> Result<VerifyReport, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM audit_log WHERE chain = ?1 ORDER BY seq"
        ))
        .context("reading the audit chain")?;
    let mut rows = stmt.query([chain]).context("reading the audit chain")?;
    let mut verifier = ChainVerifier::new();
    while let Some(row) = rows.next().context("reading the audit chain")? {
        let good = match decode(row) {
            Ok(entry) => verifier.check(&entry),
            Err(_) => {
                let seq: i64 = row.get(0).context("reading an audit seq")?;
                verifier.unreadable(u64::try_from(seq).unwrap_or(0));
                false
            }
        };
        if !good {
            break;
        }
    }
    Ok(verifier.report())
}

/// Every chain with at least one entry, in name order.
pub fn chains(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT DISTINCT chain FROM audit_log ORDER BY chain")
        .context("listing audit chains")?;
    let chains = stmt
        .query_map([], |row| row.get(0))
        .and_then(|rows| rows.collect())
        .context("listing audit chains")?;
    Ok(chains)
}

fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: detail.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rusqlite::Connection;
    use serde_json::json;
    use time::macros::datetime;

    use super::*;
    use crate::audit::AuditKind;
    use crate::store::sqlite::test_db;
    use crate::verdict::Verdict;

    /// With the workflows `record` mentions registered, so their entries
    /// get a wid.
    fn db() -> Connection {
        let conn = test_db::db();
        for n in 0..3 {
            test_db::add_workflow(&conn, &format!("wf_{n}"), "acme");
        }
        conn
    }

    fn record(tenant: &str, n: u32) -> AuditRecord {
        AuditRecord {
            at: format!("2026-03-01T12:00:{n:02}.000000Z"),
            tenant: tenant.into(),
            org: "default".into(),
            actor: "alice".into(),
            kind: if n.is_multiple_of(2) {
                AuditKind::StepGate
            } else {
                AuditKind::WorkflowCreated
            }
            .into(),
            workflow_id: Some(format!("wf_{}", n % 3)),
            step_id: None,
            decision: n.is_multiple_of(2).then_some(Verdict::Allow),
            reason: Some(format!("reason {n}")),
            details: json!({"n": n}).as_object().cloned().unwrap(),
        }
    }

    fn append_many(conn: &mut Connection, tenant: &str, count: u32) -> Vec<AuditEntry> {
        let tx = conn.transaction().unwrap();
        let entries = (1..=count)
            .map(|n| append(&tx, tenant, record(tenant, n)).unwrap())
            .collect();
        tx.commit().unwrap();
        entries
    }

    /// What an attacker with the file does: the triggers stop casual edits only.
    fn tamper(conn: &Connection, sql: &str) {
        conn.execute_batch(&format!(
            "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete; {sql}"
        ))
        .unwrap();
    }

    fn valid(entries_checked: u64) -> VerifyReport {
        VerifyReport {
            valid: true,
            entries_checked,
            first_bad_seq: None,
        }
    }

    fn broken(entries_checked: u64, seq: u64) -> VerifyReport {
        VerifyReport {
            valid: false,
            entries_checked,
            first_bad_seq: Some(seq),
        }
    }

    #[test]
    fn appended_entries_get_seq_from_1_linked_hashes_and_verify() {
        let mut conn = db();
        let entries = append_many(&mut conn, "acme", 5);
        assert_eq!(
            entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(entries[0].prev_hash, GENESIS_HASH);
        assert_eq!(entries[3].prev_hash, entries[2].hash);
        assert_eq!(verify_chain(&conn, "acme").unwrap(), valid(5));
        let (stored, total) = list(&conn, "acme", &AuditFilter::default()).unwrap();
        assert_eq!(
            (stored, total),
            (entries, 5),
            "read back exactly as appended"
        );
    }

    #[test]
    fn the_log_refuses_updates_and_deletes() {
        let mut conn = db();
        append_many(&mut conn, "acme", 2);
        for sql in [
            "UPDATE audit_log SET reason = 'x'",
            "DELETE FROM audit_log WHERE seq = 1",
        ] {
            let error = conn.execute(sql, []).unwrap_err();
            assert!(error.to_string().contains("append-only"), "{sql}: {error}");
        }
    }

    #[test]
    fn tampering_reports_the_first_bad_seq() {
        let cases = [
            (
                "reason edited",
                "UPDATE audit_log SET reason = 'nothing to see' WHERE seq = 3",
                broken(3, 3),
            ),
            (
                "details edited",
                r#"UPDATE audit_log SET details = '{"n":99}' WHERE seq = 4"#,
                broken(4, 4),
            ),
            (
                "middle deleted",
                "DELETE FROM audit_log WHERE seq = 3",
                broken(3, 4),
            ),
            (
                "first deleted",
                "DELETE FROM audit_log WHERE seq = 1",
                broken(1, 2),
            ),
            (
                "details not an object",
                "UPDATE audit_log SET details = '[1]' WHERE seq = 2",
                broken(2, 2),
            ),
            (
                "decision unknown",
                "UPDATE audit_log SET decision = 'maybe' WHERE seq = 2",
                broken(2, 2),
            ),
            ("untouched", "SELECT 1", valid(5)),
        ];
        for (name, sql, expected) in cases {
            let mut conn = db();
            append_many(&mut conn, "acme", 5);
            tamper(&conn, sql);
            assert_eq!(verify_chain(&conn, "acme").unwrap(), expected, "{name}");
        }
    }

    #[test]
    fn chains_of_two_tenants_are_independent() {
        let mut conn = db();
        append_many(&mut conn, "acme", 3);
        let globex = append_many(&mut conn, "globex", 2);
        assert_eq!(globex[0].seq, 1, "each chain counts from 1");
        assert_eq!(globex[0].prev_hash, GENESIS_HASH);
        tamper(
            &conn,
            "UPDATE audit_log SET reason = 'x' WHERE chain = 'acme' AND seq = 2",
        );
        assert_eq!(verify_chain(&conn, "acme").unwrap(), broken(2, 2));
        assert_eq!(verify_chain(&conn, "globex").unwrap(), valid(2));
        assert_eq!(verify_chain(&conn, "nobody").unwrap(), valid(0));
        assert_eq!(chains(&conn).unwrap(), ["acme", "globex"]);
    }

    #[test]
    fn append_refuses_an_entry_of_another_tenant() {
        let mut conn = db();
        let tx = conn.transaction().unwrap();
        let error = append(&tx, "acme", record("globex", 1)).unwrap_err();
        assert!(matches!(error, StoreError::Invalid { .. }), "{error}");
    }

    #[test]
    fn list_filters_pages_and_counts_all_matches() {
        let mut conn = db();
        append_many(&mut conn, "acme", 10);
        append_many(&mut conn, "globex", 4);
        let filter = |f: fn(&mut AuditFilter)| {
            let mut filter = AuditFilter::default();
            f(&mut filter);
            filter
        };
        let cases: [(&str, AuditFilter, &[u64], u64); 6] = [
            (
                "all of the chain",
                AuditFilter::default(),
                &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
                10,
            ),
            (
                "workflow",
                filter(|f| f.workflow_id = Some("wf_0".into())),
                &[3, 6, 9],
                3,
            ),
            (
                "kind",
                filter(|f| f.kind = Some("workflow_created".into())),
                &[1, 3, 5, 7, 9],
                5,
            ),
            (
                "since, inclusive",
                filter(|f| f.since = Some(datetime!(2026-03-01 12:00:08 UTC))),
                &[8, 9, 10],
                3,
            ),
            (
                "since, rounded up",
                filter(|f| f.since = Some(datetime!(2026-03-01 12:00:07.000000001 UTC))),
                &[8, 9, 10],
                3,
            ),
            (
                "page",
                filter(|f| {
                    f.limit = 3;
                    f.offset = 4;
                }),
                &[5, 6, 7],
                10,
            ),
        ];
        for (name, filter, seqs, total) in cases {
            let (entries, all) = list(&conn, "acme", &filter).unwrap();
            assert_eq!(
                entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
                seqs,
                "{name}"
            );
            assert_eq!(all, total, "{name}");
        }
    }

    #[test]
    fn a_workflow_filter_never_matches_entries_of_no_known_workflow() {
        let mut conn = db();
        append_many(&mut conn, "acme", 3);
        let tx = conn.transaction().unwrap();
        for (n, workflow_id) in [(4, None), (5, Some("wf_unregistered"))] {
            let mut entry = record("acme", n);
            entry.workflow_id = workflow_id.map(Into::into);
            append(&tx, "acme", entry).unwrap();
        }
        tx.commit().unwrap();
        let wids: Vec<Option<i64>> = conn
            .prepare("SELECT wid FROM audit_log WHERE seq > 3 ORDER BY seq")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(wids, [None, None], "no workflow row, no wid");
        // An unknown id's wid subquery is NULL, and `wid = NULL` holds for
        // no row, not even those whose wid is NULL.
        for unknown in ["wf_unregistered", "wf_nope"] {
            let filter = AuditFilter {
                workflow_id: Some(unknown.into()),
                ..AuditFilter::default()
            };
            let (entries, total) = list(&conn, "acme", &filter).unwrap();
            assert_eq!((entries.len(), total), (0, 0), "{unknown}");
        }
        let filter = AuditFilter {
            workflow_id: Some("wf_1".into()),
            ..AuditFilter::default()
        };
        let (entries, _) = list(&conn, "acme", &filter).unwrap();
        assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [1]);
        assert_eq!(verify_chain(&conn, "acme").unwrap(), valid(5));
    }
}
