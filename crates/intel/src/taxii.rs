//! A TAXII 2.1 server: discovery, one API root, collections, objects (GET with filters and
//! paging, POST), manifests and status resources, behind HTTP basic authentication.
//!
//! Routes (every one also answers without its trailing slash):
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/taxii2/` | discovery |
//! | GET | `/fedids/` | the API root |
//! | GET | `/fedids/collections/` | collections |
//! | GET | `/fedids/collections/{id}/` | one collection |
//! | GET, POST | `/fedids/collections/{id}/objects/` | objects: `added_after`, `limit`, `next`, `match[id]`, `match[type]`, `match[version]`, `match[spec_version]` |
//! | GET | `/fedids/collections/{id}/objects/{object_id}/` | one object's versions |
//! | GET | `/fedids/collections/{id}/manifest/` | the manifest, same filters |
//! | GET | `/fedids/status/{id}/` | the status of a POST |
//!
//! Persistence: the store directory holds `objects.jsonl` (one `{"date_added", "object"}` per
//! line, in the order objects were added) and `status/<id>.json`. The store is loaded at start
//! and appended to on every POST, so a restart keeps everything. The state has a single owner: a
//! mutex held only for the in-memory work and one file append, never across an `.await`.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use fedids_detect::Timestamp;
use serde_json::{json, Value};
use uuid::Uuid;

/// The TAXII 2.1 media type of every response.
pub const TAXII_MEDIA_TYPE: &str = "application/taxii+json;version=2.1";
/// The STIX 2.1 media type of the collection's objects.
pub const STIX_MEDIA_TYPE: &str = "application/stix+json;version=2.1";
/// The API root's path segment.
pub const API_ROOT: &str = "fedids";
/// The id of the one collection.
pub const COLLECTION_ID: &str = "5f1a3e86-7c1b-4d5e-9a52-6c0f2d1b9e01";
/// The largest request body.
pub const MAX_CONTENT_LENGTH: usize = 16 << 20;
/// The default and largest page size.
pub const MAX_PAGE: usize = 1000;

/// What can go wrong starting the server.
#[derive(Debug, thiserror::Error)]
pub enum TaxiiError {
    /// The store could not be read or written.
    #[error("{}: {source}", path.display())]
    Store {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line of the store is not what the server wrote.
    #[error("{}:{line}: corrupt store entry: {message}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What the JSON parser said.
        message: String,
    },
}

/// Who may use the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub user: String,
    /// The password.
    pub password: String,
}

#[derive(Debug, Clone)]
struct Entry {
    date_added: Timestamp,
    object: Value,
}

impl Entry {
    fn id(&self) -> &str {
        self.object["id"].as_str().unwrap_or_default()
    }
    fn kind(&self) -> &str {
        self.object["type"].as_str().unwrap_or_default()
    }
    /// The version: `modified`, else `created`, else the date added (cyber observables).
    fn version(&self) -> String {
        self.object["modified"]
            .as_str()
            .or_else(|| self.object["created"].as_str())
            .map_or_else(|| self.date_added.rfc3339_millis(), str::to_string)
    }
    fn version_time(&self) -> Timestamp {
        Timestamp::parse(&self.version()).unwrap_or(self.date_added)
    }
}

/// The objects, statuses and their files.
#[derive(Debug)]
struct Store {
    dir: PathBuf,
    entries: Vec<Entry>,
    /// (id, version) of every stored object.
    seen: HashSet<(String, String)>,
    statuses: BTreeMap<String, Value>,
    last_added: Timestamp,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TaxiiError + '_ {
    move |source| TaxiiError::Store {
        path: path.to_path_buf(),
        source,
    }
}

impl Store {
    fn open(dir: &Path) -> Result<Store, TaxiiError> {
        fs::create_dir_all(dir.join("status")).map_err(io_err(dir))?;
        let mut store = Store {
            dir: dir.to_path_buf(),
            entries: Vec::new(),
            seen: HashSet::new(),
            statuses: BTreeMap::new(),
            last_added: Timestamp(i64::MIN),
        };
        let objects = dir.join("objects.jsonl");
        if objects.exists() {
            let text = fs::read_to_string(&objects).map_err(io_err(&objects))?;
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let corrupt = |message: String| TaxiiError::Corrupt {
                    path: objects.clone(),
                    line: i + 1,
                    message,
                };
                let v: Value = serde_json::from_str(line).map_err(|e| corrupt(e.to_string()))?;
                let date_added = v["date_added"]
                    .as_str()
                    .and_then(Timestamp::parse)
                    .ok_or_else(|| corrupt("no date_added".to_string()))?;
                let entry = Entry {
                    date_added,
                    object: v["object"].clone(),
                };
                store.seen.insert((entry.id().to_string(), entry.version()));
                store.last_added = store.last_added.max(date_added);
                store.entries.push(entry);
            }
        }
        let status_dir = dir.join("status");
        for item in fs::read_dir(&status_dir).map_err(io_err(&status_dir))? {
            let path = item.map_err(io_err(&status_dir))?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = fs::read_to_string(&path).map_err(io_err(&path))?;
                if let Ok(v) = serde_json::from_str::<Value>(&text) {
                    if let Some(id) = v["id"].as_str() {
                        store.statuses.insert(id.to_string(), v);
                    }
                }
            }
        }
        Ok(store)
    }

    /// Adds the objects of one POST; returns the status resource.
    fn add(&mut self, objects: &[Value], now: Timestamp) -> Result<Value, TaxiiError> {
        let mut successes = Vec::new();
        let mut failures = Vec::new();
        let mut lines = String::new();
        for object in objects {
            let id = object["id"].as_str().unwrap_or_default();
            let kind = object["type"].as_str().unwrap_or_default();
            let valid_id = id
                .split_once("--")
                .is_some_and(|(t, u)| t == kind && !kind.is_empty() && Uuid::parse_str(u).is_ok());
            if !valid_id {
                failures.push(json!({
                    "id": if id.is_empty() { "unknown" } else { id },
                    "message": "an object needs a 'type' and an 'id' of the form 'type--uuid'",
                }));
                continue;
            }
            // date_added strictly increases, so `added_after` paging never skips or repeats.
            let date_added = if now > self.last_added {
                now
            } else {
                Timestamp(self.last_added.0 + 1)
            };
            let entry = Entry {
                date_added,
                object: object.clone(),
            };
            let key = (id.to_string(), entry.version());
            if self.seen.contains(&key) {
                successes.push(json!({ "id": id, "version": key.1, "message": "already present" }));
                continue;
            }
            self.last_added = date_added;
            lines.push_str(
                &json!({ "date_added": date_added.rfc3339_micros(), "object": object }).to_string(),
            );
            lines.push('\n');
            successes.push(json!({ "id": id, "version": key.1 }));
            self.seen.insert(key);
            self.entries.push(entry);
        }
        if !lines.is_empty() {
            let path = self.dir.join("objects.jsonl");
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io_err(&path))?;
            f.write_all(lines.as_bytes()).map_err(io_err(&path))?;
            f.sync_data().map_err(io_err(&path))?;
        }
        let status_id = Uuid::new_v5(
            &fedids_detect::FEDIDS_NAMESPACE,
            format!("taxii-status|{}|{}", now.0, self.statuses.len()).as_bytes(),
        )
        .to_string();
        let status = json!({
            "id": status_id,
            "status": "complete",
            "request_timestamp": now.rfc3339_micros(),
            "total_count": successes.len() + failures.len(),
            "success_count": successes.len(),
            "successes": successes,
            "failure_count": failures.len(),
            "failures": failures,
            "pending_count": 0,
            "pendings": [],
        });
        let path = self.dir.join("status").join(format!("{status_id}.json"));
        fs::write(&path, status.to_string()).map_err(io_err(&path))?;
        self.statuses.insert(status_id, status.clone());
        Ok(status)
    }
}

/// What a successful POST published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// SHA-256 of the posted `objects` array serialised as compact JSON.
    pub sha256: [u8; 32],
    /// Objects posted.
    pub n_objects: usize,
    /// The collection posted to.
    pub collection: String,
    /// Ids of the objects the POST stored or already held.
    pub ids: Vec<String>,
}

/// Told about every successful POST before the client gets its answer: the extension point where
/// a site records what it published on the ledger (`fedids taxii serve --ledger-node`). An
/// error is reported to the client (the objects stay stored).
pub trait PublishHook: Send + Sync + 'static {
    /// Records `publication`; `Err` says why it could not be recorded.
    fn published(
        &self,
        publication: Publication,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>>;
}

#[derive(Clone)]
struct AppState {
    store: Arc<Mutex<Store>>,
    credentials: Arc<Credentials>,
    title: Arc<String>,
    hook: Option<Arc<dyn PublishHook>>,
}

impl AppState {
    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        // A panic while holding the lock cannot leave the store half-written in memory in a way
        // later requests would misread (entries are pushed after their line is built), so a
        // poisoned lock is recovered.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Opens (or creates) the store and builds the router. `title` names the server in discovery.
pub fn router(
    store_dir: &Path,
    credentials: Credentials,
    title: &str,
) -> Result<Router, TaxiiError> {
    router_with_hook(store_dir, credentials, title, None)
}

/// [`router`], calling `hook` after every POST that succeeded.
pub fn router_with_hook(
    store_dir: &Path,
    credentials: Credentials,
    title: &str,
    hook: Option<Arc<dyn PublishHook>>,
) -> Result<Router, TaxiiError> {
    let state = AppState {
        store: Arc::new(Mutex::new(Store::open(store_dir)?)),
        credentials: Arc::new(credentials),
        title: Arc::new(title.to_string()),
        hook,
    };
    let root = format!("/{API_ROOT}");
    let mut r = Router::new();
    for (path, route) in [
        ("/taxii2".to_string(), get(discovery)),
        (root.clone(), get(api_root)),
        (format!("{root}/collections"), get(collections)),
        (
            format!("{root}/collections/{{collection}}"),
            get(collection),
        ),
        (
            format!("{root}/collections/{{collection}}/objects"),
            get(get_objects).post(post_objects),
        ),
        (
            format!("{root}/collections/{{collection}}/objects/{{object}}"),
            get(get_object),
        ),
        (
            format!("{root}/collections/{{collection}}/manifest"),
            get(manifest),
        ),
        (format!("{root}/status/{{status}}"), get(status)),
    ] {
        r = r
            .route(&format!("{path}/"), route.clone())
            .route(&path, route);
    }
    Ok(
        r.fallback(|| async {
            taxii_error(StatusCode::NOT_FOUND, "not found", "no such resource")
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .layer(DefaultBodyLimit::max(MAX_CONTENT_LENGTH))
        .with_state(state),
    )
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

fn taxii_json(status: StatusCode, body: Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(TAXII_MEDIA_TYPE),
    );
    resp
}

fn taxii_error(status: StatusCode, title: &str, description: &str) -> Response {
    taxii_json(
        status,
        json!({ "title": title, "description": description, "http_status": status.as_u16().to_string() }),
    )
}

/// Authentication and the Accept header, for every route.
async fn guard(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let authorized = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .is_some_and(|pair| {
            let expected = format!("{}:{}", state.credentials.user, state.credentials.password);
            constant_time_eq(pair.as_bytes(), expected.as_bytes())
        });
    if !authorized {
        let mut resp = taxii_error(
            StatusCode::UNAUTHORIZED,
            "authentication required",
            "this server needs HTTP basic authentication",
        );
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"fedids TAXII\""),
        );
        return resp;
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*");
    if !accepts_taxii(accept) {
        return taxii_error(
            StatusCode::NOT_ACCEPTABLE,
            "not acceptable",
            &format!("this server answers {TAXII_MEDIA_TYPE}, the request accepts '{accept}'"),
        );
    }
    next.run(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether an Accept header admits TAXII 2.1 JSON.
fn accepts_taxii(accept: &str) -> bool {
    accept.split(',').any(|item| {
        let mut parts = item.split(';').map(|p| p.trim().to_ascii_lowercase());
        let media = parts.next().unwrap_or_default();
        let version = parts.find_map(|p| p.strip_prefix("version=").map(str::to_string));
        match media.as_str() {
            "*/*" | "application/*" => true,
            "application/taxii+json" => version.is_none_or(|v| v == "2.1"),
            _ => false,
        }
    })
}

async fn discovery(State(state): State<AppState>) -> Response {
    let root = format!("/{API_ROOT}/");
    taxii_json(
        StatusCode::OK,
        json!({
            "title": *state.title,
            "description": "fedids threat intelligence: indicators of attacks detected by federated intrusion detectors",
            "default": root,
            "api_roots": [root],
        }),
    )
}

async fn api_root(State(state): State<AppState>) -> Response {
    taxii_json(
        StatusCode::OK,
        json!({
            "title": *state.title,
            "description": "fedids incidents as STIX 2.1",
            "versions": [TAXII_MEDIA_TYPE],
            "max_content_length": MAX_CONTENT_LENGTH,
        }),
    )
}

fn collection_info() -> Value {
    json!({
        "id": COLLECTION_ID,
        "title": "fedids indicators",
        "description": "Indicators, sightings and attack patterns from fedids incidents",
        "can_read": true,
        "can_write": true,
        "media_types": [STIX_MEDIA_TYPE],
    })
}

fn check_collection(id: &str) -> Result<(), Box<Response>> {
    if id == COLLECTION_ID {
        Ok(())
    } else {
        Err(Box::new(taxii_error(
            StatusCode::NOT_FOUND,
            "unknown collection",
            &format!("no collection '{id}'"),
        )))
    }
}

async fn collections() -> Response {
    taxii_json(
        StatusCode::OK,
        json!({ "collections": [collection_info()] }),
    )
}

async fn collection(UrlPath(id): UrlPath<String>) -> Response {
    match check_collection(&id) {
        Ok(()) => taxii_json(StatusCode::OK, collection_info()),
        Err(r) => *r,
    }
}

/// The query of objects and manifest requests.
#[derive(Debug, Default)]
struct Filter {
    added_after: Option<Timestamp>,
    limit: usize,
    next: usize,
    ids: Option<Vec<String>>,
    types: Option<Vec<String>>,
    versions: Vec<String>,
    spec_versions: Option<Vec<String>>,
}

fn parse_filter(q: &BTreeMap<String, String>) -> Result<Filter, Box<Response>> {
    let bad = |what: String| Box::new(taxii_error(StatusCode::BAD_REQUEST, "bad request", &what));
    let list = |key: &str| {
        q.get(key).map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .collect::<Vec<_>>()
        })
    };
    let mut f = Filter {
        limit: MAX_PAGE,
        ids: list("match[id]"),
        types: list("match[type]"),
        versions: list("match[version]").unwrap_or_else(|| vec!["last".to_string()]),
        spec_versions: list("match[spec_version]"),
        ..Filter::default()
    };
    if let Some(v) = q.get("added_after") {
        f.added_after = Some(
            Timestamp::parse(v)
                .ok_or_else(|| bad(format!("added_after: expected a timestamp, found '{v}'")))?,
        );
    }
    if let Some(v) = q.get("limit") {
        let n: usize = v
            .parse()
            .map_err(|_| bad(format!("limit: expected a positive integer, found '{v}'")))?;
        f.limit = if n == 0 { MAX_PAGE } else { n.min(MAX_PAGE) };
    }
    if let Some(v) = q.get("next") {
        if !v.is_empty() {
            f.next = v
                .parse()
                .map_err(|_| bad(format!("next: not a token this server issued: '{v}'")))?;
        }
    }
    for v in &f.versions {
        if !matches!(v.as_str(), "last" | "first" | "all") && Timestamp::parse(v).is_none() {
            return Err(bad(format!(
                "match[version]: expected last, first, all or a timestamp, found '{v}'"
            )));
        }
    }
    Ok(f)
}

/// The entries the filter selects, in date-added order.
fn select<'a>(entries: &'a [Entry], f: &Filter) -> Vec<&'a Entry> {
    let matching: Vec<&Entry> = entries
        .iter()
        .filter(|e| {
            f.ids
                .as_ref()
                .is_none_or(|ids| ids.iter().any(|i| i == e.id()))
        })
        .filter(|e| {
            f.types
                .as_ref()
                .is_none_or(|t| t.iter().any(|k| k == e.kind()))
        })
        .filter(|e| {
            f.spec_versions.as_ref().is_none_or(|s| {
                let v = e.object["spec_version"].as_str().unwrap_or("2.1");
                s.iter().any(|x| x == v)
            })
        })
        .collect();
    // Versions per id.
    let mut first: BTreeMap<&str, Timestamp> = BTreeMap::new();
    let mut last: BTreeMap<&str, Timestamp> = BTreeMap::new();
    for e in &matching {
        let t = e.version_time();
        first
            .entry(e.id())
            .and_modify(|x| *x = (*x).min(t))
            .or_insert(t);
        last.entry(e.id())
            .and_modify(|x| *x = (*x).max(t))
            .or_insert(t);
    }
    matching
        .into_iter()
        .filter(|e| {
            let t = e.version_time();
            f.versions.iter().any(|v| match v.as_str() {
                "all" => true,
                "last" => last.get(e.id()) == Some(&t),
                "first" => first.get(e.id()) == Some(&t),
                other => Timestamp::parse(other) == Some(t),
            })
        })
        .filter(|e| f.added_after.is_none_or(|a| e.date_added > a))
        .collect()
}

/// One page of `selected` and the headers that describe it.
fn page<'a>(selected: &[&'a Entry], f: &Filter) -> (Vec<&'a Entry>, bool, Option<String>) {
    let start = f.next.min(selected.len());
    let end = (start + f.limit).min(selected.len());
    let items = selected.get(start..end).unwrap_or_default().to_vec();
    let more = end < selected.len();
    (items, more, more.then(|| end.to_string()))
}

fn with_date_headers(mut resp: Response, items: &[&Entry]) -> Response {
    if let (Some(first), Some(last)) = (items.first(), items.last()) {
        for (name, t) in [
            ("x-taxii-date-added-first", first.date_added),
            ("x-taxii-date-added-last", last.date_added),
        ] {
            if let Ok(v) = HeaderValue::from_str(&t.rfc3339_micros()) {
                resp.headers_mut().insert(name, v);
            }
        }
    }
    resp
}

/// The paged envelope shared by the objects, object and manifest endpoints: the collection
/// check, filters, paging, `more`/`next`, and the date headers. `render` turns one stored entry
/// into a listed object. With `required` set, an empty selection is a 404 naming that object.
fn paged(
    state: &AppState,
    id: &str,
    q: &BTreeMap<String, String>,
    required: Option<&str>,
    render: impl Fn(&Entry) -> Value,
) -> Response {
    if let Err(r) = check_collection(id) {
        return *r;
    }
    let f = match parse_filter(q) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let store = state.store();
    let selected = select(&store.entries, &f);
    if let (Some(object), true) = (required, selected.is_empty()) {
        return taxii_error(
            StatusCode::NOT_FOUND,
            "unknown object",
            &format!("no object '{object}' in this collection"),
        );
    }
    let (items, more, next) = page(&selected, &f);
    let mut body = json!({ "more": more });
    if let Some(next) = next {
        body["next"] = json!(next);
    }
    if !items.is_empty() {
        body["objects"] = Value::Array(items.iter().map(|e| render(e)).collect());
    }
    with_date_headers(taxii_json(StatusCode::OK, body), &items)
}

async fn get_objects(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    paged(&state, &id, &q, None, |e| e.object.clone())
}

async fn get_object(
    State(state): State<AppState>,
    UrlPath((id, object)): UrlPath<(String, String)>,
    Query(mut q): Query<BTreeMap<String, String>>,
) -> Response {
    q.insert("match[id]".to_string(), object.clone());
    paged(&state, &id, &q, Some(&object), |e| e.object.clone())
}

async fn manifest(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    paged(&state, &id, &q, None, |e| {
        json!({
            "id": e.id(),
            "date_added": e.date_added.rfc3339_micros(),
            "version": e.version(),
            "media_type": STIX_MEDIA_TYPE,
        })
    })
}

async fn post_objects(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = check_collection(&id) {
        return *r;
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if media != "application/taxii+json" {
        return taxii_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported media type",
            &format!("POST an envelope as {TAXII_MEDIA_TYPE}, not '{content_type}'"),
        );
    }
    let envelope: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return taxii_error(
                StatusCode::BAD_REQUEST,
                "bad request",
                &format!("the body is not JSON: {e}"),
            )
        }
    };
    let Some(objects) = envelope["objects"].as_array() else {
        return taxii_error(
            StatusCode::BAD_REQUEST,
            "bad request",
            "expected an envelope (or bundle) with an 'objects' list",
        );
    };
    let now = now();
    let status = state.store().add(objects, now);
    match status {
        Ok(status) => {
            if let Some(hook) = &state.hook {
                use sha2::Digest;
                let digest = sha2::Sha256::digest(Value::Array(objects.clone()).to_string());
                let ids: Vec<String> = status["successes"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s["id"].as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                let publication = Publication {
                    sha256: digest.into(),
                    n_objects: objects.len(),
                    collection: id.clone(),
                    ids,
                };
                if let Err(e) = hook.published(publication).await {
                    tracing::error!("publication not recorded: {e}");
                    return taxii_error(
                        StatusCode::BAD_GATEWAY,
                        "ledger failure",
                        &format!(
                            "the objects are stored, but the publication was not recorded: {e}"
                        ),
                    );
                }
            }
            taxii_json(StatusCode::ACCEPTED, status)
        }
        Err(e) => {
            tracing::error!("{e}");
            taxii_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "store failure",
                &e.to_string(),
            )
        }
    }
}

async fn status(State(state): State<AppState>, UrlPath(id): UrlPath<String>) -> Response {
    match state.store().statuses.get(&id) {
        Some(s) => taxii_json(StatusCode::OK, s.clone()),
        None => taxii_error(
            StatusCode::NOT_FOUND,
            "unknown status",
            &format!("no status '{id}'"),
        ),
    }
}

/// The clock, read here at the edge.
fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(d.as_micros().min(i64::MAX as u128) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers() {
        assert!(accepts_taxii("application/taxii+json;version=2.1"));
        assert!(accepts_taxii("application/taxii+json"));
        assert!(accepts_taxii("*/*"));
        assert!(accepts_taxii(
            "text/html, application/taxii+json; version=2.1"
        ));
        assert!(!accepts_taxii("application/taxii+json;version=2.0"));
        assert!(!accepts_taxii("text/html"));
    }

    #[test]
    fn store_filters_pages_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let obj = |kind: &str, n: u128, modified: &str| json!({ "type": kind, "spec_version": "2.1", "id": format!("{kind}--{}", Uuid::from_u128(n)), "created": "2020-01-01T00:00:00.000Z", "modified": modified });
        let objects = vec![
            obj("indicator", 1, "2020-01-01T00:00:00.000Z"),
            obj("indicator", 1, "2020-01-02T00:00:00.000Z"),
            obj("identity", 2, "2020-01-01T00:00:00.000Z"),
            json!({ "type": "indicator", "id": "nonsense" }),
        ];
        let status = store.add(&objects, Timestamp(1000)).unwrap();
        assert_eq!(status["success_count"], 3);
        assert_eq!(status["failure_count"], 1);
        // The same again: already present, not duplicated.
        store.add(&objects[..1], Timestamp(500)).unwrap();
        assert_eq!(store.entries.len(), 3);

        let all = Filter {
            limit: 10,
            versions: vec!["all".into()],
            ..Filter::default()
        };
        assert_eq!(select(&store.entries, &all).len(), 3);
        let last = Filter {
            limit: 10,
            versions: vec!["last".into()],
            ..Filter::default()
        };
        let sel = select(&store.entries, &last);
        assert_eq!(sel.len(), 2);
        assert_eq!(sel[0].version(), "2020-01-02T00:00:00.000Z");
        let types = Filter {
            limit: 10,
            types: Some(vec!["identity".into()]),
            versions: vec!["last".into()],
            ..Filter::default()
        };
        assert_eq!(select(&store.entries, &types).len(), 1);
        let after = Filter {
            limit: 10,
            versions: vec!["all".into()],
            added_after: Some(Timestamp(1000)),
            ..Filter::default()
        };
        assert_eq!(select(&store.entries, &after).len(), 2);
        let paged = Filter {
            limit: 2,
            versions: vec!["all".into()],
            ..Filter::default()
        };
        let sel = select(&store.entries, &paged);
        let (items, more, next) = page(&sel, &paged);
        assert_eq!((items.len(), more, next.as_deref()), (2, true, Some("2")));

        let reopened = Store::open(dir.path()).unwrap();
        assert_eq!(reopened.entries.len(), 3);
        assert_eq!(reopened.statuses.len(), 2);
        assert!(reopened.last_added >= Timestamp(1002));
    }
}
