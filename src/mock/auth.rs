//! `POST /v1/auth/register`, `POST /v1/auth/login` and the bearer-token check of chat completions when
//! `auth_required` is set, as a gateway's user store would answer them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::Mutex;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::stats::bump;
use super::synth::{TOKEN_DOMAIN, TOKEN_TAIL_DOMAIN, USER_DOMAIN, draw};
use super::{MAX_ENTRIES, Shared, body_rejection, error_response, json_response};

/// Longer credentials are refused so that a million stored users stay within a modest memory budget.
const MAX_CREDENTIAL_LEN: usize = 256;

/// Issued access tokens live this long as far as clients are told; the mock never expires them, since a
/// load test outliving an hour should not start failing for a reason it did not ask to test.
const EXPIRES_IN_SECS: u64 = 3600;

#[derive(Default)]
pub(super) struct Accounts {
    /// Username to password. A mock stores them as given: nothing here is a real secret.
    users: Mutex<HashMap<String, String>>,
    tokens: Mutex<HashSet<String>>,
}

impl Accounts {
    /// Whether the `Authorization` header's value is `Bearer <a token issued by login>`.
    pub(super) fn authorized(&self, authorization: Option<&[u8]>) -> bool {
        // Visible ASCII only, as `HeaderValue::to_str` takes it.
        let visible = |v: &&[u8]| v.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b));
        let Some(value) = authorization.filter(visible).and_then(|v| std::str::from_utf8(v).ok()) else {
            return false;
        };
        let Some((scheme, token)) = value.trim().split_once(' ') else { return false };
        scheme.eq_ignore_ascii_case("bearer") && lock(&self.tokens).contains(token.trim())
    }
}

/// A poisoned lock only means another request panicked mid-update; the sets themselves stay consistent.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `{"username":..,"password":..}`, both non-empty strings of bounded length; else the response that says
/// why (boxed: a `Response` is large for an error variant).
fn credentials(body: Result<Bytes, BytesRejection>) -> Result<(String, String), Box<Response>> {
    let body = body.map_err(|r| Box::new(body_rejection(r)))?;
    let bad = |message: &str| Box::new(error_response(StatusCode::BAD_REQUEST, "invalid_request_error", message));
    let value: Value = serde_json::from_slice(&body).map_err(|e| bad(&format!("invalid JSON body ({e})")))?;
    let field =
        |name: &str| value.get(name).and_then(Value::as_str).filter(|s| !s.is_empty() && s.len() <= MAX_CREDENTIAL_LEN);
    match (field("username"), field("password")) {
        (Some(user), Some(password)) => Ok((user.to_owned(), password.to_owned())),
        _ => Err(bad(&format!(
            "'username' and 'password' are required non-empty strings of at most {MAX_CREDENTIAL_LEN} bytes"
        ))),
    }
}

fn full() -> Response {
    error_response(StatusCode::SERVICE_UNAVAILABLE, "server_error", "the mock's account store is full")
}

pub(super) async fn register(State(shared): State<Arc<Shared>>, body: Result<Bytes, BytesRejection>) -> Response {
    let (username, password) = match credentials(body) {
        Ok(c) => c,
        Err(response) => return *response,
    };
    let mut users = lock(&shared.accounts.users);
    if users.contains_key(&username) {
        let message = format!("username '{username}' is already taken");
        return error_response(StatusCode::CONFLICT, "invalid_request_error", &message);
    }
    if users.len() >= MAX_ENTRIES {
        return full();
    }
    // Ids follow the registration order, which makes them reproducible for a sequential client.
    let user_id = format!("u_{:016x}", draw(shared.config.seed, USER_DOMAIN, users.len() as u64));
    users.insert(username.clone(), password);
    drop(users);
    bump(&shared.stats.registrations);
    json_response(StatusCode::CREATED, json!({ "user_id": user_id, "username": username }).to_string().into())
}

pub(super) async fn login(State(shared): State<Arc<Shared>>, body: Result<Bytes, BytesRejection>) -> Response {
    let (username, password) = match credentials(body) {
        Ok(c) => c,
        Err(response) => return *response,
    };
    if lock(&shared.accounts.users).get(&username) != Some(&password) {
        return error_response(StatusCode::UNAUTHORIZED, "authentication_error", "invalid username or password");
    }
    let mut tokens = lock(&shared.accounts.tokens);
    if tokens.len() >= MAX_ENTRIES {
        return full();
    }
    // `draw` is a bijection of the index, so the first half alone keeps tokens distinct.
    let n = tokens.len() as u64;
    let seed = shared.config.seed;
    let token = format!("mk-{:016x}{:016x}", draw(seed, TOKEN_DOMAIN, n), draw(seed, TOKEN_TAIL_DOMAIN, n));
    tokens.insert(token.clone());
    drop(tokens);
    bump(&shared.stats.logins);
    let body = json!({ "access_token": token, "token_type": "bearer", "expires_in": EXPIRES_IN_SECS });
    json_response(StatusCode::OK, body.to_string().into())
}
