//! The dashboard as the server embeds it: every ES module the page imports is
//! served as JavaScript, and the page's event and phase names come from
//! `GET /api/events`. In-process (`perfstats::server::app`), no listener.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use perfstats::Event;
use std::collections::{BTreeSet, VecDeque};
use std::path::Path;
use support::{app_state, oneshot};

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// The specifiers of a module's `import … from '…'` (and bare `import '…'`).
fn imports(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    for marker in [" from '", "import '"] {
        for (at, _) in source.match_indices(marker) {
            let rest = &source[at + marker.len()..];
            found.push(rest[..rest.find('\'').unwrap()].to_string());
        }
    }
    found
}

/// `specifier` as the browser resolves it from the module at `base` (both paths).
fn resolve(base: &str, specifier: &str) -> String {
    assert!(
        specifier.starts_with("./") || specifier.starts_with("../"),
        "{base} imports {specifier:?}: only relative imports resolve without a build step"
    );
    let mut parts: Vec<&str> = base.split('/').collect();
    parts.pop();
    for part in specifier.split('/') {
        match part {
            "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    parts.join("/")
}

/// Every `.js` file under `static/`, as the path the page asks for (`/js/api.js`).
fn js_files(dir: &Path, prefix: &str, found: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let path = format!("{prefix}/{name}");
        if entry.file_type().unwrap().is_dir() {
            js_files(&entry.path(), &path, found);
        } else if name.ends_with(".js") {
            found.insert(path);
        }
    }
}

#[tokio::test]
async fn every_module_the_page_imports_is_served_as_javascript() {
    let state = app_state();
    let page = oneshot(&state, get("/")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let marker = "<script type=\"module\" src=\"";
    let entry = page
        .body()
        .split_once(marker)
        .unwrap_or_else(|| panic!("index.html loads no module script: {}", page.body()))
        .1;
    let entry = entry[..entry.find('"').unwrap()].to_string();

    // Follows the imports as the browser does, from what the server serves.
    let mut served = BTreeSet::new();
    let mut queue = VecDeque::from([entry]);
    while let Some(path) = queue.pop_front() {
        if !served.insert(path.clone()) {
            continue;
        }
        let response = oneshot(&state, get(&path)).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        let content_type = response.headers()[header::CONTENT_TYPE].to_str().unwrap();
        assert!(
            content_type.starts_with("text/javascript"),
            "GET {path}: content-type {content_type} (browsers refuse modules that are not JavaScript)"
        );
        let on_disk =
            std::fs::read_to_string(format!("{}/static{path}", env!("CARGO_MANIFEST_DIR")))
                .unwrap();
        assert_eq!(response.body(), &on_disk, "{path} is served as written");
        for specifier in imports(response.body()) {
            queue.push_back(resolve(&path, &specifier));
        }
    }

    // The walk reached every module in static/: none is left out of the page (or
    // out of this walk), and the split really is into several modules.
    let mut on_disk = BTreeSet::new();
    js_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("static"),
        "",
        &mut on_disk,
    );
    assert_eq!(served, on_disk);
    assert!(served.len() > 10, "{served:?}");
}

#[tokio::test]
async fn the_names_endpoint_lists_every_event_in_proto_order_and_the_phases() {
    let state = app_state();
    let response = oneshot(&state, get("/api/events")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let names: serde_json::Value = serde_json::from_str(response.body()).unwrap();
    let events = names["events"].as_array().unwrap();
    // The proto numbers the 17 events 71 to 87; the page colours them in this order.
    let numbers: Vec<i64> = events
        .iter()
        .map(|event| event["number"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, (71..=87).collect::<Vec<i64>>());
    for event in events {
        let number = event["number"].as_i64().unwrap() as i32;
        let defined = Event::from_number(number).unwrap();
        assert_eq!(event["name"], defined.as_str_name(), "{event}");
        assert_eq!(event["seed_name"], defined.seed_name(), "{event}");
    }
    assert_eq!(events[0]["name"], "EVENT_LIBP2P_NODE_ID_KNOWN");
    assert_eq!(events[16]["name"], "EVENT_RA_RECEIVED_SIMULATION_DATA");

    // The sync phases in their order, with the labels the nodes table is headed by.
    let phases: Vec<(&str, &str)> = names["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|phase| {
            (
                phase["name"].as_str().unwrap(),
                phase["label"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        phases,
        [
            ("EVENT_LIBP2P_NODE_ID_KNOWN", "id known"),
            ("EVENT_FIRST_PEER_CONNECTED", "first peer"),
            ("EVENT_RA_CONNECTED", "ra connected"),
            ("EVENT_INITIAL_SYNC_CHAINDB_RECEIVED", "chaindb received"),
            ("EVENT_INITIAL_SYNC_CHAINDB_VERIFIED", "chaindb verified"),
            ("EVENT_INITIAL_SYNC_COMPLETED", "synced"),
        ]
    );
    let flagged: Vec<&str> = events
        .iter()
        .filter(|event| event["phase"] == true)
        .map(|event| event["name"].as_str().unwrap())
        .collect();
    let mut in_phases: Vec<&str> = phases.iter().map(|(name, _)| *name).collect();
    in_phases.sort_by_key(|name| Event::from_str_name(name).unwrap() as i32);
    assert_eq!(flagged, in_phases, "\"phase\" marks exactly the phases");
}
