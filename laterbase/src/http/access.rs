//! Who may do what: tokens, each with scopes over databases named by globs,
//! and the rule each route of the router is held to.
//!
//! A node with no token is open. A node with tokens answers `401
//! unauthorized` to a request that presents none it knows, and `403
//! forbidden` to a known token without the scope or the database the route
//! needs; either way before the route reads anything. Tokens are compared
//! in constant time, every one of them each time, and are never logged.

use std::sync::Arc;

use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::event::{EventId, glob_matches};

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every GET of a database's events and views, their live streams, and
    /// `GET /db/{db}`.
    Read,
    /// Writing events, and creating the database.
    Write,
    /// The sync routes, both ways, for the database (and creating it through
    /// sync).
    Sync,
    /// Backups, `/metrics`, `/peers` and `/status`: node-wide, and no access
    /// to any database's data.
    Admin,
}

impl Scope {
    /// Every scope, as `--token` grants them.
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Write, Scope::Sync, Scope::Admin];

    /// `read`, `write`, `sync` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Sync => "sync",
            Scope::Admin => "admin",
        }
    }
}

/// How a token is known: itself, or its SHA-256 (so that the file that
/// names it does not hold it).
#[derive(Clone)]
enum Secret {
    Plain(Vec<u8>),
    Sha256([u8; 32]),
}

/// One token and what it may do.
#[derive(Clone)]
pub struct Grant {
    secret: Secret,
    databases: Vec<String>,
    scopes: Vec<Scope>,
    node: Option<EventId>,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself.
        f.debug_struct("Grant")
            .field("databases", &self.databases)
            .field("scopes", &self.scopes)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Grant {
    /// The token `token`, with no scope yet, on every database.
    pub fn token(token: &str) -> Grant {
        Grant {
            secret: Secret::Plain(token.as_bytes().to_vec()),
            databases: vec!["*".to_owned()],
            scopes: Vec::new(),
            node: None,
        }
    }

    /// The token whose SHA-256 is `hex` (64 hexadecimal digits), with no
    /// scope yet, on every database.
    pub fn sha256_hex(hex: &str) -> Result<Grant, String> {
        let digits = hex.trim();
        if digits.len() != 64 {
            return Err(format!(
                "a SHA-256 is 64 hexadecimal digits, not {}",
                digits.len()
            ));
        }
        let mut hash = [0_u8; 32];
        for (byte, pair) in hash.iter_mut().zip(digits.as_bytes().chunks(2)) {
            let text = std::str::from_utf8(pair).map_err(|_| "not hexadecimal".to_owned())?;
            *byte = u8::from_str_radix(text, 16)
                .map_err(|_| format!("{text:?} is not two hexadecimal digits"))?;
        }
        Ok(Grant {
            secret: Secret::Sha256(hash),
            databases: vec!["*".to_owned()],
            scopes: Vec::new(),
            node: None,
        })
    }

    /// `--token T`: every scope on every database.
    pub fn everything(token: &str) -> Grant {
        Grant::token(token).scopes(Scope::ALL)
    }

    /// The grant on the databases `databases` names: names, or globs where
    /// `*` stands for any run of characters.
    pub fn databases(mut self, databases: impl IntoIterator<Item = impl Into<String>>) -> Grant {
        self.databases = databases.into_iter().map(Into::into).collect();
        self
    }

    /// The grant with `scopes`.
    pub fn scopes(mut self, scopes: impl IntoIterator<Item = Scope>) -> Grant {
        self.scopes = scopes.into_iter().collect();
        self.scopes.sort_unstable();
        self.scopes.dedup();
        self
    }

    /// Sync under this token must claim to come from `node`.
    pub fn node(mut self, node: Option<EventId>) -> Grant {
        self.node = node;
        self
    }

    /// Whether the token may do `scope` on the database `name`.
    pub fn allows(&self, scope: Scope, name: &str) -> bool {
        self.scopes.contains(&scope) && self.covers(name)
    }

    /// Whether the token has `scope` on any database at all.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// Whether the grant's databases include `name`.
    pub fn covers(&self, name: &str) -> bool {
        self.databases.iter().any(|glob| glob_matches(glob, name))
    }

    /// The node sync under this token must claim, if one is set.
    pub fn bound_node(&self) -> Option<EventId> {
        self.node
    }

    /// Whether `given` is this token, in time that does not depend on where
    /// they differ.
    fn matches(&self, given: &[u8], given_hash: &[u8; 32]) -> bool {
        match &self.secret {
            Secret::Plain(token) => token.ct_eq(given).into(),
            Secret::Sha256(hash) => hash.ct_eq(given_hash).into(),
        }
    }
}

/// Every token a node knows; none leaves the node open.
#[derive(Clone, Debug, Default)]
pub struct Access {
    grants: Arc<Vec<Grant>>,
}

/// Who asked: the grant of the token presented, or nobody on an open node.
#[derive(Clone, Debug)]
pub struct Caller(Option<Grant>);

impl Caller {
    /// Whether the caller may do `scope` on the database `name`.
    pub fn allows(&self, scope: Scope, name: &str) -> bool {
        self.0
            .as_ref()
            .is_none_or(|grant| grant.allows(scope, name))
    }

    /// The caller's grant; `None` on an open node.
    pub fn grant(&self) -> Option<&Grant> {
        self.0.as_ref()
    }
}

impl Access {
    /// A node open to every request.
    pub fn open() -> Access {
        Access::default()
    }

    /// A node that knows these tokens, and refuses requests without one of
    /// them.
    pub fn grants(grants: Vec<Grant>) -> Access {
        Access {
            grants: Arc::new(grants),
        }
    }

    /// Whether the node is open: it knows no token.
    pub fn is_open(&self) -> bool {
        self.grants.is_empty()
    }

    /// How many tokens the node knows.
    pub fn len(&self) -> usize {
        self.grants.len()
    }

    /// Whether the node knows no token.
    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    /// The caller that `headers` present: nobody on an open node, else the
    /// grant of their bearer token, or `401 unauthorized`.
    pub(super) fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        if self.is_open() {
            return Ok(Caller(None));
        }
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "))
            .ok_or_else(ApiError::unauthorized)?;
        let hash: [u8; 32] = Sha256::digest(given).into();
        // Every grant is compared, whichever matches: the time taken says
        // nothing of which one did.
        let mut found = None;
        for grant in self.grants.iter() {
            if grant.matches(given, &hash) && found.is_none() {
                found = Some(grant);
            }
        }
        found
            .map(|grant| Caller(Some(grant.clone())))
            .ok_or_else(ApiError::unauthorized)
    }
}

/// What a route needs of its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Nothing: `/healthz` and the dashboard's page and assets.
    Nothing,
    /// Any token the node knows (the answer shows only what it may see).
    Token,
    /// The `admin` scope.
    Admin,
    /// A scope on the database the path names.
    On(Scope),
    /// The `sync` scope on some database (the answer shows only those).
    SyncAny,
}

impl Need {
    /// Whether `caller` may take the route, for the database `name` the
    /// path names, if any; `403 forbidden` if not.
    pub(super) fn check(self, caller: &Caller, name: Option<&str>) -> Result<(), ApiError> {
        let Some(grant) = caller.grant() else {
            return Ok(());
        };
        let allowed = match self {
            Need::Nothing | Need::Token => true,
            Need::Admin => grant.has(Scope::Admin),
            Need::SyncAny => grant.has(Scope::Sync),
            Need::On(scope) => name.is_some_and(|name| grant.allows(scope, name)),
        };
        if allowed {
            return Ok(());
        }
        Err(ApiError::forbidden(match (self, name) {
            (Need::On(scope), Some(name)) => format!(
                "this token may not {} the database {name:?}: it needs the `{}` scope on it",
                verb(scope),
                scope.as_str()
            ),
            (Need::SyncAny, _) => {
                "this token has no `sync` scope: it may not sync with this node".to_owned()
            }
            _ => "this route needs the `admin` scope".to_owned(),
        }))
    }
}

fn verb(scope: Scope) -> &'static str {
    match scope {
        Scope::Read => "read",
        Scope::Write => "write to",
        Scope::Sync => "sync",
        Scope::Admin => "administer",
    }
}

/// Refuses a sync message under a token bound to one node that claims to
/// come from another (or names none).
pub(super) fn check_node(caller: &Caller, claimed: Option<&str>) -> Result<(), ApiError> {
    let Some(bound) = caller.grant().and_then(Grant::bound_node) else {
        return Ok(());
    };
    let claimed_id = claimed.and_then(|text| text.parse::<EventId>().ok());
    if claimed_id == Some(bound) {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "this token is the node {bound}'s: a sync message under it claims {}",
        claimed.map_or_else(|| "no node".to_owned(), |text| format!("the node {text:?}"))
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_known_by_value_or_by_hash() {
        let hash = "c2b6e3f7e1b5cb1a6c7fa5b7cbd4de8e8df0cf0e0a67cf6b7e6b2c3e9b1a5d7f";
        assert!(Grant::sha256_hex(hash).is_ok());
        assert!(Grant::sha256_hex("abc").is_err());
        assert!(Grant::sha256_hex(&"zz".repeat(32)).is_err());
        let hex: String = Sha256::digest(b"t17")
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        let access = Access::grants(vec![
            Grant::sha256_hex(&hex)
                .expect("a hash")
                .scopes([Scope::Read]),
            Grant::token("plain").scopes([Scope::Write]),
        ]);
        let headers = |token: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::AUTHORIZATION,
                format!("Bearer {token}").parse().expect("a header"),
            );
            headers
        };
        let caller = access.caller(&headers("t17")).expect("known by its hash");
        assert!(caller.allows(Scope::Read, "x") && !caller.allows(Scope::Write, "x"));
        let caller = access.caller(&headers("plain")).expect("known as itself");
        assert!(caller.allows(Scope::Write, "x") && !caller.allows(Scope::Read, "x"));
        assert!(access.caller(&headers("other")).is_err());
        assert!(access.caller(&HeaderMap::new()).is_err());
        assert!(
            Access::open()
                .caller(&HeaderMap::new())
                .expect("open")
                .allows(Scope::Admin, "x")
        );
    }

    #[test]
    fn a_bound_token_syncs_only_as_its_node() {
        let node = EventId::from_parts(1, 7);
        let caller = Caller(Some(Grant::everything("t").node(Some(node))));
        assert!(check_node(&caller, Some(&node.to_string())).is_ok());
        let other = EventId::from_parts(1, 8).to_string();
        assert_eq!(
            check_node(&caller, Some(&other)).map_err(|error| error.code),
            Err("forbidden")
        );
        assert!(check_node(&caller, None).is_err());
        assert!(check_node(&Caller(Some(Grant::everything("t"))), Some(&other)).is_ok());
    }
}
