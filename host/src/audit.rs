//! The tamper-evident audit trail (contract §7), as pure logic: what an entry
//! holds, how it is hashed into its chain, and how a chain is verified.
//!
//! There is one chain per tenant, plus the chain `global` for global-policy
//! events. Each entry's `hash` covers the previous entry's hash and the
//! entry's own fields (its `seq` included), so editing, reordering or
//! removing an entry breaks every hash after it. Storage lives in
//! the store (`store::sqlite::audit` for SQLite); this module knows no SQL.
//!
//! A hash chain cannot show that entries were cut off its *end*: a verifier
//! sees a shorter, valid chain. Anchoring the head elsewhere is future work.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::canonical;
use crate::verdict::Verdict;

/// The `prev_hash` of the first entry of every chain: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The chain of global-policy events; tenant ids can never be `global`.
pub const GLOBAL_CHAIN: &str = "global";

/// What a state change records, before the chain gives it a place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When it happened, in the API's timestamp format.
    pub at: String,
    /// The tenant whose chain holds it (`global` for global policies).
    pub tenant: String,
    /// The caller's org.
    pub org: String,
    /// Who did it: client id, community username, `community`, or `system`.
    pub actor: String,
    /// What happened, e.g. `step_gate` (see [`AuditKind`]).
    pub kind: String,
    /// The workflow concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<String>,
    /// The step concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_id: Option<String>,
    /// The decision taken, if the event has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Verdict>,
    /// The reason given, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Kind-specific fields (contract §7 table); an object, `{}` when none.
    pub details: Map<String, Value>,
}

/// One entry of a chain, as stored and as `GET /api/v1/audit` returns it:
/// the record's fields at the top level, with its place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in its chain, from 1.
    pub seq: u64,
    /// What happened.
    #[serde(flatten)]
    pub record: AuditRecord,
    /// The previous entry's `hash`, or [`GENESIS_HASH`] for `seq` 1.
    pub prev_hash: String,
    /// See [`hash_entry`].
    pub hash: String,
}

/// Lowercase hex SHA-256 of `prev_hash` (UTF-8) followed by the RFC 8785
/// (JCS) JSON of `entry` without its `hash` and `prev_hash`.
///
/// JCS makes the bytes independent of key order and number formatting, so
/// any implementation (a PostgreSQL backend, an external auditor) that
/// re-serialises an entry gets the same hash.
pub fn hash_entry(prev_hash: &str, entry: &AuditEntry) -> String {
    let record = &entry.record;
    // The members in JCS order (their keys are ASCII, so byte order);
    // optional ones are left out when absent. Written by hand rather than
    // through serde: see `crate::canonical`.
    let mut text = Vec::with_capacity(1024);
    let key = |text: &mut Vec<u8>, key: &str| {
        text.push(if text.is_empty() { b'{' } else { b',' });
        canonical::write_str(text, key);
        text.push(b':');
    };
    let string = |text: &mut Vec<u8>, name: &str, value: &str| {
        key(text, name);
        canonical::write_str(text, value);
    };
    string(&mut text, "actor", &record.actor);
    string(&mut text, "at", &record.at);
    if let Some(decision) = record.decision {
        string(&mut text, "decision", decision.as_str());
    }
    key(&mut text, "details");
    canonical::write_object(&mut text, &record.details);
    string(&mut text, "kind", &record.kind);
    string(&mut text, "org", &record.org);
    if let Some(reason) = &record.reason {
        string(&mut text, "reason", reason);
    }
    // A chain position is far below 2^53, where doubles stop being exact.
    key(&mut text, "seq");
    canonical::write_f64(&mut text, entry.seq as f64);
    if let Some(step_id) = &record.step_id {
        string(&mut text, "step_id", step_id);
    }
    string(&mut text, "tenant", &record.tenant);
    if let Some(workflow_id) = &record.workflow_id {
        string(&mut text, "workflow_id", workflow_id);
    }
    text.push(b'}');
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(&text);
    hex::encode(hasher.finalize())
}

impl AuditRecord {
    /// Places the record at `seq` after an entry whose hash is `prev_hash`,
    /// computing its own hash.
    pub fn seal(self, seq: u64, prev_hash: &str) -> AuditEntry {
        let mut entry = AuditEntry {
            seq,
            record: self,
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
        };
        entry.hash = hash_entry(prev_hash, &entry);
        entry
    }
}

/// The result of walking a chain: `{"valid":true,"entries_checked":n}` or
/// `{"valid":false,"entries_checked":k,"first_bad_seq":s}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Whether every entry checked was good.
    pub valid: bool,
    /// Entries looked at, the bad one included.
    pub entries_checked: u64,
    /// The `seq` of the first bad entry, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<u64>,
}

/// Walks a chain one entry at a time, so a store can stream a long chain
/// instead of loading it whole.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    last_seq: u64,
    last_hash: String,
    checked: u64,
    first_bad_seq: Option<u64>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            last_seq: 0,
            last_hash: GENESIS_HASH.to_owned(),
            checked: 0,
            first_bad_seq: None,
        }
    }
}

impl ChainVerifier {
    /// A verifier expecting `seq` 1 after the genesis hash.
    pub fn new() -> Self {
        ChainVerifier::default()
    }

    /// Checks the next entry; returns `false` once the chain is broken, and
    /// the caller should stop feeding entries.
    pub fn check(&mut self, entry: &AuditEntry) -> bool {
        if self.first_bad_seq.is_some() {
            return false;
        }
        self.checked += 1;
        let good = entry.seq == self.last_seq + 1
            && entry.prev_hash == self.last_hash
            && hash_entry(&entry.prev_hash, entry) == entry.hash;
        if good {
            self.last_seq = entry.seq;
            self.last_hash.clone_from(&entry.hash);
        } else {
            self.first_bad_seq = Some(entry.seq);
        }
        good
    }

    /// Records an entry at `seq` that could not even be read (a stored
    /// value that does not decode): it is bad by definition.
    pub fn unreadable(&mut self, seq: u64) {
        if self.first_bad_seq.is_none() {
            self.checked += 1;
            self.first_bad_seq = Some(seq);
        }
    }

    /// The verdict so far.
    pub fn report(&self) -> VerifyReport {
        VerifyReport {
            valid: self.first_bad_seq.is_none(),
            entries_checked: self.checked,
            first_bad_seq: self.first_bad_seq,
        }
    }
}

/// Verifies a chain given in `seq` order, from `seq` 1.
pub fn verify<'a>(entries: impl IntoIterator<Item = &'a AuditEntry>) -> VerifyReport {
    let mut verifier = ChainVerifier::new();
    for entry in entries {
        if !verifier.check(entry) {
            break;
        }
    }
    verifier.report()
}

/// The kinds of audit entry the contract names (§7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditKind {
    /// A workflow was registered.
    WorkflowCreated,
    /// A gate decided (fresh or cached).
    StepGate,
    /// A step reported done.
    StepCompleted,
    /// A held step was approved.
    StepApproved,
    /// A held step was rejected.
    StepRejected,
    /// A hold timed out.
    ApprovalExpired,
    /// A workflow completed.
    WorkflowCompleted,
    /// A workflow failed.
    WorkflowFailed,
    /// A workflow was aborted.
    WorkflowAborted,
    /// A workflow was revived from a checkpoint.
    WorkflowResumed,
    /// A policy version started serving.
    PolicyLoaded,
    /// A policy file failed to load.
    PolicyLoadFailed,
    /// A policy was removed.
    PolicyRemoved,
}

impl AuditKind {
    /// The kind as entries spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::WorkflowCreated => "workflow_created",
            AuditKind::StepGate => "step_gate",
            AuditKind::StepCompleted => "step_completed",
            AuditKind::StepApproved => "step_approved",
            AuditKind::StepRejected => "step_rejected",
            AuditKind::ApprovalExpired => "approval_expired",
            AuditKind::WorkflowCompleted => "workflow_completed",
            AuditKind::WorkflowFailed => "workflow_failed",
            AuditKind::WorkflowAborted => "workflow_aborted",
            AuditKind::WorkflowResumed => "workflow_resumed",
            AuditKind::PolicyLoaded => "policy_loaded",
            AuditKind::PolicyLoadFailed => "policy_load_failed",
            AuditKind::PolicyRemoved => "policy_removed",
        }
    }
}

impl From<AuditKind> for String {
    fn from(kind: AuditKind) -> Self {
        kind.as_str().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sha2::{Digest, Sha256};

    use super::*;

    fn record(n: u64) -> AuditRecord {
        AuditRecord {
            at: format!("2026-03-01T12:00:{n:02}.000000Z"),
            tenant: "acme".into(),
            org: "default".into(),
            actor: "alice".into(),
            kind: AuditKind::StepGate.into(),
            workflow_id: Some("wf_1".into()),
            step_id: Some(format!("s{n}")),
            decision: Some(Verdict::Allow),
            reason: Some("No matching policies".into()),
            details: json!({"gate_count": n})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// The hash as contract §7 defines it, through the JCS crate: what
    /// [`hash_entry`] must agree with byte for byte.
    fn reference_hash(prev_hash: &str, entry: &AuditEntry) -> String {
        #[derive(Serialize)]
        struct Hashed<'a> {
            seq: u64,
            #[serde(flatten)]
            record: &'a AuditRecord,
        }
        let hashed = Hashed {
            seq: entry.seq,
            record: &entry.record,
        };
        let text = serde_json_canonicalizer::to_vec(&hashed).unwrap_or_default();
        hex::encode(
            Sha256::new()
                .chain_update(prev_hash)
                .chain_update(text)
                .finalize(),
        )
    }

    #[test]
    fn entry_hashes_agree_with_the_jcs_of_the_whole_entry() {
        let full = record(3);
        let bare = AuditRecord {
            workflow_id: None,
            step_id: None,
            decision: None,
            reason: None,
            details: Map::new(),
            ..record(4)
        };
        let odd = AuditRecord {
            actor: "\u{e9}ve \"q\"\n".into(),
            reason: Some("\u{1f600} \u{ffff} / \\".into()),
            decision: Some(Verdict::RequireApproval),
            details: json!({"cost_usd": 1.0, "tokens": 12_u64, "tiny": 1e-7, "big": 1e21,
                             "\u{e000}": [1, {"b": null, "a": true}], "\u{10000}": "x",
                             "policies_evaluated": [{"policy_id": "global/pii", "duration_ms": 0.125}]})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            ..record(5)
        };
        for (n, record) in [full, bare, odd].into_iter().enumerate() {
            for seq in [1, 9, 10, 12_345, 9_007_199_254_740_000] {
                let prev = format!("{n:064}");
                let entry = record.clone().seal(seq, &prev);
                assert_eq!(entry.hash, reference_hash(&prev, &entry), "{n} {seq}");
            }
        }
    }

    fn chain(len: u64) -> Vec<AuditEntry> {
        let mut entries: Vec<AuditEntry> = Vec::new();
        for seq in 1..=len {
            let prev = entries
                .last()
                .map_or(GENESIS_HASH, |e| e.hash.as_str())
                .to_owned();
            entries.push(record(seq).seal(seq, &prev));
        }
        entries
    }

    #[test]
    fn hash_is_sha256_of_prev_hash_then_jcs_without_hashes() {
        let entry = AuditEntry {
            seq: 7,
            record: AuditRecord {
                at: "2026-03-01T12:00:00.123456Z".into(),
                tenant: "acme".into(),
                org: "default".into(),
                actor: "alice".into(),
                kind: "step_gate".into(),
                workflow_id: Some("wf_1".into()),
                step_id: None,
                decision: Some(Verdict::RequireApproval),
                reason: Some("Over 10000 USD \u{e9}".into()),
                details: json!({"z": 1.5, "a": [true, null], "m": {"y": "é", "b": 10}})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            },
            prev_hash: "ignored, the argument counts".into(),
            hash: "ignored".into(),
        };
        let prev = "ab".repeat(32);
        // Keys sorted, no whitespace, `step_id` omitted, hashes left out.
        let jcs = concat!(
            r#"{"actor":"alice","at":"2026-03-01T12:00:00.123456Z","decision":"require_approval","#,
            r#""details":{"a":[true,null],"m":{"b":10,"y":"é"},"z":1.5},"kind":"step_gate","#,
            r#""org":"default","reason":"Over 10000 USD é","seq":7,"tenant":"acme","#,
            r#""workflow_id":"wf_1"}"#
        );
        let expected = hex::encode(Sha256::digest(format!("{prev}{jcs}").as_bytes()));
        assert_eq!(hash_entry(&prev, &entry), expected);
    }

    #[test]
    fn absent_optional_fields_are_omitted_from_json() {
        let mut bare = record(1);
        bare.workflow_id = None;
        bare.step_id = None;
        bare.decision = None;
        bare.reason = None;
        let json = serde_json::to_value(bare.seal(1, GENESIS_HASH)).unwrap_or_default();
        for key in ["workflow_id", "step_id", "decision", "reason"] {
            assert!(json.get(key).is_none(), "{key} present in {json}");
        }
        assert_eq!(json["prev_hash"], GENESIS_HASH);
    }

    #[test]
    fn verify_reports_the_first_bad_entry() {
        type Tamper = fn(&mut Vec<AuditEntry>);
        let cases: [(&str, Tamper, VerifyReport); 6] = [
            ("untouched", |_| {}, report(true, 5, None)),
            (
                "edited reason",
                |c| c[2].record.reason = Some("edited".into()),
                report(false, 3, Some(3)),
            ),
            (
                "edited details",
                |c| {
                    c[3].record.details.insert("x".into(), json!(1));
                },
                report(false, 4, Some(4)),
            ),
            (
                "middle removed",
                |c| {
                    c.remove(2);
                },
                report(false, 3, Some(4)),
            ),
            (
                "first removed",
                |c| {
                    c.remove(0);
                },
                report(false, 1, Some(2)),
            ),
            ("swapped", |c| c.swap(1, 2), report(false, 2, Some(3))),
        ];
        for (name, tamper, expected) in cases {
            let mut entries = chain(5);
            tamper(&mut entries);
            assert_eq!(verify(&entries), expected, "{name}");
        }
    }

    #[test]
    fn a_rehashed_edit_is_still_caught_by_the_next_link() {
        let mut entries = chain(4);
        entries[1].record.reason = Some("edited".into());
        entries[1].hash = hash_entry(&entries[1].prev_hash, &entries[1]);
        assert_eq!(verify(&entries), report(false, 3, Some(3)));
    }

    #[test]
    fn empty_chain_is_valid_and_serialises_without_first_bad_seq() {
        let good = verify(&[]);
        assert_eq!(
            serde_json::to_string(&good).ok().as_deref(),
            Some(r#"{"valid":true,"entries_checked":0}"#)
        );
        let bad = report(false, 3, Some(3));
        assert_eq!(
            serde_json::to_string(&bad).ok().as_deref(),
            Some(r#"{"valid":false,"entries_checked":3,"first_bad_seq":3}"#)
        );
    }

    fn report(valid: bool, entries_checked: u64, first_bad_seq: Option<u64>) -> VerifyReport {
        VerifyReport {
            valid,
            entries_checked,
            first_bad_seq,
        }
    }
}
