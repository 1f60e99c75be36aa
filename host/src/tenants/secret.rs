//! Client secrets: hashing them for the tenants file and checking them on
//! requests.
//!
//! argon2id costs tens of milliseconds by design, too much for every gate,
//! so [`Verifier`] remembers successful checks for a short time. It never
//! holds a secret in clear: only an HMAC-SHA256 of it under a random key
//! made for this process, bound to the client id and its `secret_hash`, so
//! a rotated hash invalidates what was remembered.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::Client;

/// Most successful verifications remembered at once.
pub const MAX_CACHED: usize = 10_000;

/// An argon2id PHC string with the crate's default parameters that no
/// secret matches (its hash is zeros): what an unknown client id is checked
/// against, so it costs what a wrong secret costs.
const UNKNOWN_CLIENT_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$d2NwLXVua25vd24tY2xpZW50$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// Why a secret cannot be hashed; never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// An empty secret protects nothing.
    #[error("the secret is empty")]
    Empty,
    /// argon2 or the random salt failed.
    #[error("cannot hash the secret: {0}")]
    Hash(String),
}

/// argon2id with the crate's default parameters and a random salt, as a PHC string.
pub fn hash_secret(secret: &str) -> Result<String, SecretError> {
    if secret.is_empty() {
        return Err(SecretError::Empty);
    }
    Argon2::default()
        .hash_password(secret.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|error| SecretError::Hash(error.to_string()))
}

type Tag = [u8; 32];

/// A verification remembered: when, and the HMAC of what was verified.
struct Entry {
    tag: Tag,
    verified_at: Instant,
}

/// Checks client secrets against their argon2id hashes, remembering
/// successes for a while.
pub struct Verifier {
    ttl: Duration,
    /// The HMAC key; `None` if the OS gave no randomness, and then nothing
    /// is remembered.
    key: Option<Tag>,
    /// By client id.
    cache: Mutex<HashMap<String, Entry>>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("ttl", &self.ttl)
            .field("caching", &self.key.is_some())
            .field("cached", &self.entries().len())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Successful verifications are remembered for `ttl`, so a gate does not pay for argon2 every time.
    pub fn new(ttl: Duration) -> Verifier {
        let mut key = [0u8; 32];
        let key = match getrandom::fill(&mut key) {
            Ok(()) => Some(key),
            Err(error) => {
                tracing::warn!(%error, "no randomness for the credentials cache: every request pays for argon2");
                None
            }
        };
        Verifier {
            ttl,
            key,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Fast path, no argon2: whether (client, secret) verified within the ttl AND the client's secret_hash is the same string as then.
    pub fn cached(&self, client: &Client, secret: &str) -> bool {
        self.cached_at(client, secret, Instant::now())
    }

    /// Slow (argon2, tens of ms): call off the async executor. Checks `secret` against `client.secret_hash`; on success remembers it.
    pub fn verify(&self, client: &Client, secret: &str) -> bool {
        let Ok(hash) = PasswordHash::new(&client.secret_hash) else {
            // A validated tenants file never gets here; cost the same anyway.
            self.verify_unknown(secret);
            return false;
        };
        let verified = Argon2::default()
            .verify_password(secret.as_bytes(), &hash)
            .is_ok();
        if verified {
            self.remember(client, secret, Instant::now());
        }
        verified
    }

    /// Burns the same work as a failed `verify` for an unknown client id, so response time does not tell which client ids exist.
    pub fn verify_unknown(&self, secret: &str) {
        if let Ok(hash) = PasswordHash::new(UNKNOWN_CLIENT_PHC) {
            let outcome = Argon2::default().verify_password(secret.as_bytes(), &hash);
            std::hint::black_box(outcome.is_ok());
        }
    }

    /// [`Verifier::cached`] at `now`.
    fn cached_at(&self, client: &Client, secret: &str, now: Instant) -> bool {
        let Some(tag) = self.tag(client, secret) else {
            return false;
        };
        let mut entries = self.entries();
        let Some(entry) = entries.get(&client.client_id) else {
            return false;
        };
        if self.expired(entry, now) {
            entries.remove(&client.client_id);
            return false;
        }
        bool::from(entry.tag.ct_eq(&tag))
    }

    /// Remembers that `secret` verified for `client` at `now`.
    fn remember(&self, client: &Client, secret: &str, now: Instant) {
        let Some(tag) = self.tag(client, secret) else {
            return;
        };
        let mut entries = self.entries();
        if entries.len() >= MAX_CACHED && !entries.contains_key(&client.client_id) {
            entries.retain(|_, entry| !self.expired(entry, now));
            if entries.len() >= MAX_CACHED {
                entries.clear();
            }
        }
        entries.insert(
            client.client_id.clone(),
            Entry {
                tag,
                verified_at: now,
            },
        );
    }

    fn expired(&self, entry: &Entry, now: Instant) -> bool {
        now.saturating_duration_since(entry.verified_at) >= self.ttl
    }

    /// HMAC of the client id, its secret hash and the secret; the first two
    /// length-prefixed so no two triples share an input.
    fn tag(&self, client: &Client, secret: &str) -> Option<Tag> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.as_ref()?).ok()?;
        for part in [&client.client_id, &client.secret_hash] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac.update(secret.as_bytes());
        Some(mac.finalize().into_bytes().into())
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // Entries are whole after any panic: keep using them.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use crate::tenants::tests::phc;

    fn client(secret_hash: &str) -> Client {
        Client {
            client_id: "acme-ci".to_owned(),
            secret_hash: secret_hash.to_owned(),
            tenant: "acme".to_owned(),
            org: "acme-org".to_owned(),
            roles: vec![Role::Member],
            enabled: true,
            max_concurrent_workflows: None,
        }
    }

    #[test]
    fn hash_secret_gives_a_verifying_argon2id_phc_string() {
        let hashed = hash_secret("s3cret").expect("hashes");
        let parsed = PasswordHash::new(&hashed).expect("a PHC string");
        assert_eq!(parsed.algorithm, argon2::ARGON2ID_IDENT);
        assert!(crate::tenants::validate::valid_secret_hash(&hashed).is_ok());
        let argon2 = Argon2::default();
        assert!(argon2.verify_password(b"s3cret", &parsed).is_ok());
        assert!(argon2.verify_password(b"s3cret ", &parsed).is_err());
        // A random salt: the same secret hashes differently each time.
        assert_ne!(hash_secret("s3cret").expect("hashes"), hashed);
        assert_eq!(hash_secret(""), Err(SecretError::Empty));
    }

    #[test]
    fn unknown_clients_cost_what_a_default_hash_costs() {
        // Same algorithm and parameters as `hash_secret` writes.
        let dummy = PasswordHash::new(UNKNOWN_CLIENT_PHC).expect("parses");
        let real = PasswordHash::new(phc()).expect("parses");
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params, real.params);
        assert!(crate::tenants::validate::valid_secret_hash(UNKNOWN_CLIENT_PHC).is_ok());
        Verifier::new(Duration::from_secs(60)).verify_unknown("s3cret");
    }

    #[test]
    fn verifies_and_remembers_only_the_right_secret() {
        let verifier = Verifier::new(Duration::from_secs(60));
        let client = client(phc());
        assert!(!verifier.cached(&client, "s3cret"));
        assert!(!verifier.verify(&client, "wrong"));
        assert!(!verifier.cached(&client, "wrong"));
        assert!(verifier.verify(&client, "s3cret"));
        assert!(verifier.cached(&client, "s3cret"));
        assert!(!verifier.cached(&client, "wrong"));
        assert!(!verifier.cached(&client, "s3cret "));
        assert!(!verifier.cached(&client, ""));

        // Another client with the same hash did not verify.
        let mut other = client.clone();
        other.client_id = "acme-ops".to_owned();
        assert!(!verifier.cached(&other, "s3cret"));
    }

    #[test]
    fn forgets_after_the_ttl() {
        let ttl = Duration::from_secs(60);
        let verifier = Verifier::new(ttl);
        let client = client(phc());
        let at = Instant::now();
        verifier.remember(&client, "s3cret", at);
        assert!(verifier.cached_at(&client, "s3cret", at));
        assert!(verifier.cached_at(&client, "s3cret", at + ttl - Duration::from_millis(1)));
        assert!(!verifier.cached_at(&client, "s3cret", at + ttl));
        // Dropped on that access.
        assert!(verifier.entries().is_empty());
        assert!(!verifier.cached_at(&client, "s3cret", at));
    }

    #[test]
    fn forgets_when_the_secret_hash_changes() {
        let verifier = Verifier::new(Duration::from_secs(60));
        let mut client = client(phc());
        verifier.remember(&client, "s3cret", Instant::now());
        assert!(verifier.cached(&client, "s3cret"));
        // A rotated hash, even of the same secret.
        client.secret_hash = hash_secret("s3cret").expect("hashes");
        assert!(!verifier.cached(&client, "s3cret"));
    }

    #[test]
    fn the_cache_is_bounded() {
        let ttl = Duration::from_secs(60);
        let verifier = Verifier::new(ttl);
        let at = Instant::now();
        let mut client = client(phc());
        for n in 0..MAX_CACHED {
            client.client_id = format!("client-{n}");
            // Half of them verified long enough ago to have expired.
            let when = if n % 2 == 0 { at } else { at + ttl };
            verifier.remember(&client, "s3cret", when);
        }
        assert_eq!(verifier.entries().len(), MAX_CACHED);

        // Full: the expired half goes.
        client.client_id = "one-more".to_owned();
        verifier.remember(&client, "s3cret", at + ttl);
        assert_eq!(verifier.entries().len(), MAX_CACHED / 2 + 1);
        assert!(verifier.cached_at(&client, "s3cret", at + ttl));

        // Full of live entries: cleared.
        let verifier = Verifier::new(ttl);
        for n in 0..MAX_CACHED {
            client.client_id = format!("client-{n}");
            verifier.remember(&client, "s3cret", at + ttl);
        }
        assert_eq!(verifier.entries().len(), MAX_CACHED);
        client.client_id = "last".to_owned();
        verifier.remember(&client, "s3cret", at + ttl);
        assert_eq!(verifier.entries().len(), 1);
    }

    #[test]
    fn debug_shows_no_key() {
        let verifier = Verifier::new(Duration::from_secs(60));
        let text = format!("{verifier:?}");
        assert!(
            text.starts_with("Verifier { ttl: 60s, caching: true, cached: 0"),
            "{text}"
        );
    }
}
