//! The HTTP API that `docs/http.md` describes: `router(state) -> Router`.
//!
//! Handlers reach data only through the node's handles ([`Node`](crate::Node),
//! [`Database`](crate::Database)). Every answer that is not a success is an
//! [`ApiError`], extractor rejections included. Middleware, outermost first:
//! metrics (requests by route and status, latency), the request timeout,
//! the bearer token (`/healthz` and the dashboard's page and assets, which
//! hold no data, go without), the count of live streams open, then the
//! room among the answers held (`held`: reads reserve theirs before they
//! read, other large answers take theirs once built).
//!
//! ```text
//! request -> metrics -> timeout -> auth -> live count -> held -> route -> handler -> Node / Database
//! ```

mod access;
mod backup;
pub mod binary;
mod connection;
mod dashboard;
mod error;
mod event_json;
mod events;
mod feed;
mod held;
mod live;
mod names;
mod pump;
mod state;
mod status;
mod stream;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::PathRejection;
use axum::extract::{MatchedPath, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

pub use access::{Access, Caller, Grant, Need, Scope};
pub use backup::{BackupDir, BackupRefusal};
pub use connection::{ConnectionSlot, Remote, StreamedConnection};
pub use error::ApiError;
pub use state::HttpState;

use crate::limits::{PAGE_BYTES_MAX, VIEW_PAGE_ROWS_MAX, VIEW_STREAM_BYTES_HELD};
use crate::replication::{Lag, Replication};
use names::{database_name, undecodable_name};

/// The router of the whole API over `state`.
pub fn router(state: HttpState) -> Router {
    let Routes { router, rules } = routes();
    let rules = Arc::new(rules);
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), hold_answers))
        .layer(middleware::from_fn_with_state(
            (state.clone(), rules),
            authorize,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), time_out))
        .layer(middleware::from_fn(measure))
        .layer(middleware::from_fn(connection::streams_leave_the_bound))
        .layer(middleware::from_fn_with_state(state.clone(), name_node))
        .with_state(state)
}

/// Every route the router serves, each method with what it needs of its
/// caller: the table [`router`] is built from, so that no route escapes it.
pub fn route_rules() -> Vec<RouteRule> {
    routes().rules
}

/// One method of one route, and what it needs of its caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteRule {
    /// The route, as the router matches it (`/db/{db}/e`).
    pub path: &'static str,
    /// The method.
    pub method: Method,
    /// What the caller's token needs.
    pub need: Need,
}

/// The router as it is built, and the rule of each method of each route.
struct Routes {
    router: Router<HttpState>,
    rules: Vec<RouteRule>,
}

impl Routes {
    /// Serves `path` with `service`, whose methods need what `needs` says.
    fn route(
        mut self,
        path: &'static str,
        needs: &[(Method, Need)],
        service: axum::routing::MethodRouter<HttpState>,
    ) -> Routes {
        self.router = self.router.route(path, service);
        for (method, need) in needs {
            self.rules.push(RouteRule {
                path,
                method: method.clone(),
                need: *need,
            });
        }
        self
    }
}

fn routes() -> Routes {
    use Method as M;
    use Need::{Admin, Nothing, On, SyncAny, Token};
    use Scope::{Read, Sync, Write};
    let routes = Routes {
        router: Router::new(),
        rules: Vec::new(),
    };
    routes
        .route("/healthz", &[(M::GET, Nothing)], get(healthz))
        .route("/metrics", &[(M::GET, Admin)], get(metrics))
        .route("/peers", &[(M::GET, Admin)], get(peers))
        .route("/status", &[(M::GET, Admin)], get(status::status))
        .route(dashboard::PAGE, &[(M::GET, Nothing)], get(dashboard::page))
        .route(
            dashboard::SCRIPT,
            &[(M::GET, Nothing)],
            get(dashboard::script),
        )
        .route(
            dashboard::STYLE,
            &[(M::GET, Nothing)],
            get(dashboard::style),
        )
        .route("/db", &[(M::GET, Token)], get(list_databases))
        .route(
            "/db/{db}",
            &[
                (M::GET, On(Read)),
                (M::PUT, On(Write)),
                (M::POST, On(Write)),
            ],
            get(database_info)
                .put(create_database)
                .post(create_database),
        )
        .route(
            "/db/{db}/e",
            &[(M::GET, On(Read)), (M::POST, On(Write))],
            get(events::read).post(events::write),
        )
        .route("/db/{db}/conflicts", &[(M::GET, On(Read))], get(conflicts))
        .route("/db/{db}/views", &[(M::GET, On(Read))], get(view_statuses))
        .route(
            "/admin/backup",
            &[(M::POST, Admin)],
            axum::routing::post(backup),
        )
        .route(
            "/sync/{db}/offer",
            &[(M::POST, On(Sync))],
            axum::routing::post(sync_offer),
        )
        .route(
            "/sync/{db}/fill",
            &[(M::POST, On(Sync))],
            axum::routing::post(sync_fill),
        )
        .route(
            crate::replication::watch::WATCH_PATH,
            &[(M::GET, SyncAny)],
            get(sync_watch),
        )
        .route("/{db}/{view}", &[(M::GET, On(Read))], get(view))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn metrics(State(state): State<HttpState>) -> Response {
    let body = state
        .metrics_handle()
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// `GET /peers`: each peer's last pass, what this node refused of what it
/// sent and what this node could not send it; then the nodes that synced
/// with this one without being its peers, if this node refused something of
/// theirs.
async fn peers(State(state): State<HttpState>) -> Result<Json<serde_json::Value>, ApiError> {
    let refusals = state.node().refusals();
    let statuses = state
        .replicating()
        .map(Replication::peers)
        .unwrap_or_default();
    let mut peers = Vec::with_capacity(statuses.len());
    for peer in &statuses {
        let last_sync = status::last_sync(peer)?;
        let refused = peer
            .node
            .and_then(|node| refusals.get(&node))
            .cloned()
            .unwrap_or_default();
        peers.push(json!({
            "url": peer.url,
            "node": peer.node,
            "last_sync": last_sync,
            "last_error": peer.last_error,
            "refused": refused.values,
            "last_refused": refused.last,
            "unsent": peer.unsent,
            "last_unsent": peer.last_unsent,
            "wire_version": peer.wire_version,
        }));
    }
    let callers: Vec<_> = refusals
        .iter()
        .filter(|(node, _)| !statuses.iter().any(|peer| peer.node == Some(**node)))
        .map(|(node, refused)| {
            json!({"node": node, "refused": refused.values, "last_refused": refused.last})
        })
        .collect();
    // The contract's answer is `{"peers": [...]}`: `callers` joins it only
    // when there is something to say.
    let answer = if callers.is_empty() {
        json!({"peers": peers})
    } else {
        json!({"peers": peers, "callers": callers})
    };
    Ok(Json(answer))
}

/// `GET /db`: the databases the caller may read or sync.
async fn list_databases(
    State(state): State<HttpState>,
    Extension(caller): Extension<Caller>,
) -> Json<serde_json::Value> {
    let mut databases = state.node().databases();
    databases.retain(|name| caller.allows(Scope::Read, name) || caller.allows(Scope::Sync, name));
    Json(json!({ "databases": databases }))
}

async fn create_database(
    State(state): State<HttpState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let name = database_name(path)?;
    let (_, created) = state.node().ensure_database(&name).await?;
    #[derive(serde::Serialize)]
    struct Created {
        name: String,
        created: bool,
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(Created { name, created })).into_response())
}

async fn database_info(
    State(state): State<HttpState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    #[derive(serde::Serialize)]
    struct Info {
        name: String,
        events: u64,
        lc: u64,
        node: crate::event::EventId,
    }
    let name = database_name(path)?;
    let info = state.node().database(&name)?.info();
    let info = Info {
        name: info.name,
        events: info.events,
        lc: info.lc,
        node: info.node,
    };
    Ok(Json(info).into_response())
}

/// `GET /db/{db}/conflicts`: a page of conflicts, `after` an id, at most
/// `limit` losing values.
async fn conflicts(
    State(state): State<HttpState>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let name = database_name(path)?;
    let database = state.node().database(&name)?;
    let (after, limit) = events::parse_conflicts_query(
        query.as_deref().unwrap_or_default(),
        &state.node().limits(),
    )?;
    // Room for a page within its bytes; a first id larger than them takes
    // more once built.
    let held = state
        .answers()
        .reserve(events::conflicts_bytes_max(limit))
        .await?;
    let page = database.conflicts(after, limit).await?;
    held.hold(events::conflicts_json(&page)?).await
}

/// `GET /{db}/{view}`: every row, or one with `?key=K`; `limit` and `after`
/// page through a large view (then the answer says whether `more` follow);
/// `feed=live` (or `Accept: text/event-stream`) streams the rows as they
/// change.
async fn view(
    State(state): State<HttpState>,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path((database, view)) = path.map_err(|_| undecodable_name())?;
    crate::event::validate_name(&database)?;
    crate::event::validate_name(&view)?;
    let db = state.node().database(&database)?;
    let accepts_live = events::accepts(&headers, live::CONTENT_TYPE);
    let query = parse_view_query(query.as_deref().unwrap_or(""), accepts_live)?;
    if let Some(heartbeat) = query.live {
        let after_lc = live::resume_lc(&headers, query.lc)?;
        let key = query.key.as_deref();
        return live::rows(state.live(), &db, &view, after_lc, key, heartbeat);
    }
    if let Some(key) = query.key {
        if query.limit.is_some() || query.after.is_some() {
            return Err(ApiError::invalid_query(
                "key (one row) cannot be combined with limit or after (a page)",
            ));
        }
        return match db.view_row(&view, &key).await? {
            Some(row) => Ok(Json(row).into_response()),
            None => Err(ApiError::key_not_found(&view, &key)),
        };
    }
    if !db.view_names().contains(&view.as_str()) {
        // Before any room is reserved: an unknown view is a 404 whatever
        // the node holds.
        return Err(ApiError::from(crate::error::Error::ViewNotFound {
            db: database,
            view,
        }));
    }
    if query.limit.is_none() {
        // Every row (after `after`), as the contract answers it: streamed
        // from one snapshot, holding the room of a few pages while it lasts.
        let held = state.answers().reserve(VIEW_STREAM_BYTES_HELD).await?;
        let pages = db.view_pages(&view, query.after.as_deref()).await?;
        return held.hold(stream::view_rows(&database, &view, pages)).await;
    }
    // Room for rows of about a page's bytes, and more once built if their
    // JSON takes more.
    let rows_max = query.limit.unwrap_or(1).min(VIEW_PAGE_ROWS_MAX);
    let held = state
        .answers()
        .reserve(PAGE_BYTES_MAX + rows_max * 64)
        .await?;
    let (rows, more) = db
        .view_rows(&view, query.after.as_deref(), query.limit)
        .await?;
    let answer = serde_json::json!({"db": database, "view": view, "rows": rows, "more": more});
    held.hold(Json(answer).into_response()).await
}

/// What a view query asks.
struct ViewQueryParams {
    key: Option<String>,
    limit: Option<usize>,
    after: Option<String>,
    /// A live stream of the rows, with its heartbeat.
    live: Option<std::time::Duration>,
    /// Where a live stream starts.
    lc: Option<u64>,
}

fn parse_view_query(query: &str, accepts_live: bool) -> Result<ViewQueryParams, ApiError> {
    let mut params = ViewQueryParams {
        key: None,
        limit: None,
        after: None,
        live: None,
        lc: None,
    };
    let (mut live, mut heartbeat_ms) = (accepts_live, None);
    let number = |name: &str, value: &str| {
        value
            .parse::<u64>()
            .map_err(|_| ApiError::invalid_query(format!("{name} {value:?} is not a whole number")))
    };
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "key" => params.key = Some(value.into_owned()),
            "after" => params.after = Some(value.into_owned()),
            "feed" if value == "live" => live = true,
            "feed" => {
                return Err(ApiError::invalid_query(format!(
                    "feed must be live, not {value:?}"
                )));
            }
            "lc" => params.lc = Some(number("lc", &value)?),
            "heartbeat_ms" => heartbeat_ms = Some(number("heartbeat_ms", &value)?),
            "limit" => match value.parse::<usize>() {
                Ok(limit) if limit >= 1 => params.limit = Some(limit),
                _ => {
                    return Err(ApiError::invalid_query(format!(
                        "limit {value:?} is not a whole number of at least 1"
                    )));
                }
            },
            other => {
                return Err(ApiError::invalid_query(format!(
                    "unknown query parameter {other:?}: a view takes key, or limit and after, or feed=live with key, lc and heartbeat_ms"
                )));
            }
        }
    }
    if live {
        if params.limit.is_some() || params.after.is_some() {
            return Err(ApiError::invalid_query(
                "a live view streams every row (or the one of key) as it changes: limit and after do not combine with it",
            ));
        }
        params.live = Some(live::heartbeat(heartbeat_ms)?);
    } else if params.lc.is_some() || heartbeat_ms.is_some() {
        return Err(ApiError::invalid_query(
            "lc and heartbeat_ms are for a live view (feed=live)",
        ));
    }
    Ok(params)
}

/// `GET /db/{db}/views`: where each view of the database stands.
async fn view_statuses(
    State(state): State<HttpState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let name = database_name(path)?;
    let statuses = state.node().database(&name)?.view_statuses().await?;
    Ok(Json(serde_json::json!({ "views": statuses })).into_response())
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(uri.path())
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(method.as_str(), uri.path())
}

pub use crate::sync::wire::NODE_HEADER;

/// Names this node on every answer, and the newest sync wire version it
/// speaks, so that a peer learns whom it syncs with and how.
async fn name_node(State(state): State<HttpState>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if let Ok(value) = header::HeaderValue::from_str(&state.node().id().to_string()) {
        response.headers_mut().insert(NODE_HEADER, value);
    }
    response.headers_mut().insert(
        crate::sync::wire::VERSION_HEADER,
        header::HeaderValue::from(u16::from(crate::sync::wire::VERSION)),
    );
    response
}

/// `POST /sync/{db}/offer`: message 1 in, message 2 out. A database the
/// peer has and this node lacks is created: the set of databases syncs too,
/// but only once the offer is read, decoded and checked as far as it can be
/// without the database, so that a refused offer creates nothing.
async fn sync_offer(
    State(state): State<HttpState>,
    path: Result<Path<String>, PathRejection>,
    remote: Option<Extension<Remote>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let (name, peer) = (database_name(path)?, peer_node(&headers)?);
    let answered = async {
        let held = state.answers().reserve(held::SYNC_ANSWER_BYTES).await?;
        let body = read_sync_body(body).await?;
        let offer = crate::replication::driver::OfferRequest::decode(&body, &name, peer)?;
        let (database, _) = state.node().ensure_peer_database(&name).await?;
        let reply = crate::replication::driver::answer_offer(&database, peer, offer).await?;
        let lag = Lag {
            to_pull: reply.to_pull,
            to_push: reply.to_push,
        };
        Ok::<_, ApiError>((held.hold(sync_response(reply.body)).await?, lag))
    }
    .await;
    let address = remote.map(|Extension(Remote(address))| address);
    match answered {
        Ok((response, lag)) => {
            state
                .callers()
                .answered(peer, address, &name, Ok(Some(lag)));
            Ok(response)
        }
        Err(error) => {
            state
                .callers()
                .answered(peer, address, &name, Err(error.message.clone()));
            Err(error)
        }
    }
}

/// `POST /sync/{db}/fill`: message 3 in, message 4 out.
async fn sync_fill(
    State(state): State<HttpState>,
    path: Result<Path<String>, PathRejection>,
    remote: Option<Extension<Remote>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let (name, peer) = (database_name(path)?, peer_node(&headers)?);
    let answered = async {
        let database = state.node().database(&name)?;
        let held = state.answers().reserve(held::SYNC_ANSWER_BYTES).await?;
        let body = read_sync_body(body).await?;
        let deliver = crate::replication::driver::answer_fill(&database, peer, &body).await?;
        held.hold(sync_response(deliver)).await
    }
    .await;
    let address = remote.map(|Extension(Remote(address))| address);
    let outcome = match &answered {
        Ok(_) => Ok(None),
        Err(error) => Err(error.message.clone()),
    };
    state.callers().answered(peer, address, &name, outcome);
    answered
}

/// `GET /sync/watch`: a peer's watch of this node's databases
/// (`replication::watch`), held open until the server stops; counted apart
/// from ordinary connections and live streams.
async fn sync_watch(
    State(state): State<HttpState>,
    remote: Option<Extension<Remote>>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let peer = peer_node(&headers)?;
    let permit = state.live().watch_permit()?;
    let address = remote.map(|Extension(Remote(address))| address);
    let watching = state.callers().watching(peer, address);
    // The peer hears only of the databases its token may sync.
    let caller = caller.map(|Extension(caller)| caller);
    let shown = move |name: &str| {
        caller
            .as_ref()
            .is_none_or(|caller| caller.allows(Scope::Sync, name))
    };
    let messages = crate::replication::watch::messages(
        state.node().clone(),
        shown,
        std::time::Duration::from_millis(crate::limits::SYNC_WATCH_HEARTBEAT_MS),
        state.live().ending(),
    );
    let held = (permit, watching);
    let body = futures_util::StreamExt::map(messages, move |bytes| {
        // The permit and the watch are let go when the stream ends.
        let _held = &held;
        Ok::<_, std::convert::Infallible>(bytes)
    });
    Ok((
        [
            (header::CONTENT_TYPE, live::CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

/// A sync message, read up to [`SYNC_BODY_BYTES_MAX`](crate::limits::SYNC_BODY_BYTES_MAX),
/// which every message a peer sends fits: an operator's lower limit for
/// writes must not cut them.
async fn read_sync_body(body: axum::body::Body) -> Result<bytes::Bytes, ApiError> {
    events::read_body_up_to(body, crate::limits::SYNC_BODY_BYTES_MAX).await
}

fn peer_node(headers: &HeaderMap) -> Result<crate::event::EventId, ApiError> {
    headers
        .get(NODE_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| {
            ApiError::invalid_id(format!(
                "a sync message names its node in the `{NODE_HEADER}` header"
            ))
        })
}

fn sync_response(body: bytes::Bytes) -> Response {
    (
        [(header::CONTENT_TYPE, crate::sync::wire::CONTENT_TYPE)],
        body,
    )
        .into_response()
}

/// Makes every large answer hold room among the answers not yet written:
/// those that reserved theirs before their work (reads, writes, sync) hold
/// it already; others (reads of the node's own state) take it once built,
/// or answer 503 if none comes within the wait.
async fn hold_answers(State(state): State<HttpState>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    state.answers().hold_built(response).await
}

/// Holds every request to its route's rule (`access`), before anything
/// else reads it: `401` without a token the node knows, `403` with one that
/// lacks the scope or the database. What the route needs is the router's
/// table's: a path the router matches that the table does not name is
/// refused to every token, so that a route added outside the table is
/// closed, not open. The caller goes on to the handler as an extension.
async fn authorize(
    State((state, rules)): State<(HttpState, Arc<Vec<RouteRule>>)>,
    request: Request,
    next: Next,
) -> Response {
    let need = match request.extensions().get::<MatchedPath>() {
        // The fallback: a known token learns the path is not found.
        None => Need::Token,
        Some(matched) => {
            let method = if request.method() == Method::HEAD {
                Method::GET
            } else {
                request.method().clone()
            };
            let of_path: Vec<&RouteRule> = rules
                .iter()
                .filter(|rule| rule.path == matched.as_str())
                .collect();
            if of_path.is_empty() {
                return ApiError::forbidden(format!(
                    "the route {} has no access rule",
                    matched.as_str()
                ))
                .into_response();
            }
            match of_path.iter().find(|rule| rule.method == method) {
                Some(rule) => rule.need,
                // Another method of a path open to all (the dashboard's):
                // anyone learns it is not allowed; of another path, a
                // known token does.
                None if of_path.iter().all(|rule| rule.need == Need::Nothing) => Need::Nothing,
                None => Need::Token,
            }
        }
    };
    if need == Need::Nothing {
        return next.run(request).await;
    }
    let caller = match state.tokens().caller(request.headers()) {
        Ok(caller) => caller,
        Err(error) => return error.into_response(),
    };
    let (mut parts, body) = request.into_parts();
    let name = match need {
        Need::On(_) => Some(
            <axum::extract::RawPathParams as axum::extract::FromRequestParts<()>>::from_request_parts(&mut parts, &())
                .await
                .ok()
                .and_then(|params| {
                    params
                        .iter()
                        .find(|(key, _)| *key == "db")
                        .map(|(_, value)| value.to_owned())
                })
                // A name that does not decode matches only `*`: the route
                // then says what is wrong with it.
                .unwrap_or_default(),
        ),
        _ => None,
    };
    if let Err(error) = need.check(&caller, name.as_deref()) {
        return error.into_response();
    }
    if parts.uri.path().starts_with("/sync/") {
        let claimed = parts
            .headers
            .get(NODE_HEADER)
            .and_then(|value| value.to_str().ok());
        if let Err(error) = access::check_node(&caller, claimed) {
            return error.into_response();
        }
    }
    parts.extensions.insert(caller);
    next.run(Request::from_parts(parts, body)).await
}

/// Answers 503 when a request takes longer than the request timeout.
async fn time_out(State(state): State<HttpState>, request: Request, next: Next) -> Response {
    let timeout = state.timeout();
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::unavailable(format!(
            "the request took longer than the node's request timeout of {} ms",
            timeout.as_millis()
        ))
        .into_response(),
    }
}

/// Counts requests by route and status, and records their latency.
async fn measure(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let start = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("route", route), ("method", method), ("status", status)];
    metrics::counter!("laterbase_http_requests_total", &labels).increment(1);
    metrics::histogram!("laterbase_http_request_duration_seconds", &labels[..2])
        .record(start.elapsed().as_secs_f64());
    response
}

/// `POST /admin/backup` with `{"to": "<new directory under the backup
/// directory>"}`: a consistent copy of the node's data, taken while it
/// serves; `{"to": <the directory written>, "records": n}`.
async fn backup(
    State(state): State<HttpState>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    #[derive(serde::Deserialize)]
    struct Backup {
        to: PathBuf,
    }
    let Some(dir) = state.backups() else {
        return Err(ApiError::backups_off());
    };
    let body = events::read_body(body, &crate::limits::Limits::default()).await?;
    let request: Backup = serde_json::from_slice(&body).map_err(|error| {
        ApiError::invalid_json(format!(
            "a backup request is {{\"to\": \"<directory>\"}}: {error}"
        ))
    })?;
    let target = dir.resolve(&request.to)?;
    let records = state.node().backup(&target).await?;
    Ok(Json(json!({"to": target, "records": records})).into_response())
}
