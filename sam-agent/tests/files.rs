//! Files in and out through the agent's HTTP endpoints, with host shells:
//! an upload lands in the terminal's current directory, whole or not at
//! all; a download brings a file, or a folder as a tarball; the cookie and
//! (for uploads) the origin are checked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const T: Duration = Duration::from_secs(10);

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// A terminal (session `session`) whose shell has moved to `dir`, and
/// what it printed so far.
async fn terminal_in(t: &TestAgent, session: &str, dir: &std::path::Path) -> (Ws, Vec<u8>) {
    let mut ws = t.connect(&format!("session={session}")).await;
    hello(&mut ws).await;
    let mut out = Vec::new();
    send_text(&mut ws, &format!("cd '{}' && echo moved-$((1+1))\r", dir.display())).await;
    read_until(&mut ws, &mut out, b"moved-2", T).await;
    (ws, out)
}

/// `GET /api/files/directory?session=`: where an upload for it lands.
async fn directory(t: &TestAgent, session: &str) -> serde_json::Value {
    let url = format!("http://{}/api/files/directory?session={session}", t.addr);
    client().get(url).header("cookie", &t.cookie).send().await.unwrap().json().await.unwrap()
}

async fn upload(t: &TestAgent, query: &str, body: Vec<u8>) -> (StatusCode, serde_json::Value) {
    let res = client()
        .post(format!("http://{}/api/files/upload?{query}", t.addr))
        .header("cookie", &t.cookie)
        .header("origin", t.origin())
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_land_in_the_terminals_directory_whole_or_not_at_all() {
    let t = start(|c| c.max_upload = 8 * 1024 * 1024).await;
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path().canonicalize().unwrap();
    let (mut ws, mut out) = terminal_in(&t, "files", &here).await;

    // Where the next upload for that terminal goes.
    let answer = directory(&t, "files").await;
    assert_eq!(answer["directory"], here.display().to_string());
    assert_eq!(answer["maxUploadBytes"], 8 * 1024 * 1024, "a page checks a file's size before sending it");

    // 3 MiB of every byte value.
    let data: Vec<u8> = (0..3 * 1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    let (status, body) = upload(&t, "session=files&name=data%20file.bin", data.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["size"], data.len());
    assert_eq!(body["path"], format!("{}/data file.bin", here.display()));
    assert_eq!(std::fs::read(here.join("data file.bin")).unwrap(), data);
    // The shell sees it.
    send_text(&mut ws, "wc -c < 'data file.bin'\r").await;
    read_until(&mut ws, &mut out, b"3145728", T).await;

    // An existing file is replaced only on request.
    let (status, body) = upload(&t, "session=files&name=data%20file.bin", b"other".to_vec()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(std::fs::read(here.join("data file.bin")).unwrap().len(), data.len());
    let (status, _) = upload(&t, "session=files&name=data%20file.bin&overwrite=1", b"other".to_vec()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(std::fs::read(here.join("data file.bin")).unwrap(), b"other");
    // A name starting with a dash is a name, not an option.
    let (status, _) = upload(&t, "session=files&name=-rf", b"x".to_vec()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(std::fs::read(here.join("-rf")).unwrap(), b"x");

    // Hostile names, a body over the limit, a missing cookie or origin.
    for bad in ["", "..", ".", "a%2Fb", "a%00b"] {
        let (status, _) = upload(&t, &format!("session=files&name={bad}"), b"x".to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "name {bad:?}");
    }
    // Over the limit: refused from the announced length, before any byte
    // of the body is read (a client still sending it may see the
    // connection close instead, so this one sends only the head).
    let mut tcp = tokio::net::TcpStream::connect(t.addr).await.unwrap();
    let head = format!(
        "POST /api/files/upload?session=files&name=big HTTP/1.1\r\nHost: {}\r\nCookie: {}\r\nOrigin: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        t.addr,
        t.cookie,
        t.origin(),
        8 * 1024 * 1024 + 1
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(T, tcp.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413") && answer.contains("8 MiB"), "{answer}");
    let url = format!("http://{}/api/files/upload?session=files&name=x", t.addr);
    let anonymous = client().post(&url).header("origin", t.origin()).body("x").send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let cross = client().post(&url).header("cookie", &t.cookie).header("origin", "https://evil.example").body("x");
    assert_eq!(cross.send().await.unwrap().status(), StatusCode::FORBIDDEN);

    // A connection that ends before all the announced bytes: no file, no
    // temporary file left behind.
    let mut tcp = tokio::net::TcpStream::connect(t.addr).await.unwrap();
    let head = format!(
        "POST /api/files/upload?session=files&name=cut.bin HTTP/1.1\r\nHost: {}\r\nCookie: {}\r\nOrigin: {}\r\nContent-Length: 100000\r\n\r\n",
        t.addr,
        t.cookie,
        t.origin()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&[7u8; 5000]).await.unwrap();
    tcp.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(T, tcp.read_to_end(&mut rest)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut names: Vec<String> =
        std::fs::read_dir(&here).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["-rf", "data file.bin"], "nothing of the cut upload");

    // Without a live session: the workspace folder.
    let answer = directory(&t, "gone").await;
    assert_eq!(answer["directory"], std::env::var("HOME").unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_bring_a_file_or_a_folder_as_a_tarball() {
    let t = start(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path().canonicalize().unwrap();
    std::fs::create_dir_all(here.join("src/nested")).unwrap();
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(here.join("src/nested/blob.bin"), &data).unwrap();
    std::fs::write(here.join("src/main.rs"), "fn main() {}\n").unwrap();
    let (_ws, _) = terminal_in(&t, "dl", &here).await;

    let get = |query: String, cookie: bool| {
        let mut req = client().get(format!("http://{}/api/files/download?{query}", t.addr));
        if cookie {
            req = req.header("cookie", &t.cookie);
        }
        req.send()
    };
    // A file, by a path relative to the terminal's directory.
    let res = get("session=dl&path=src/nested/blob.bin".into(), true).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-length"], data.len().to_string().as_str());
    assert_eq!(res.headers()["content-disposition"], "attachment; filename=\"blob.bin\"");
    assert_eq!(res.bytes().await.unwrap().as_ref(), data.as_slice());
    // A folder, by an absolute path: a gzipped tarball holding the folder.
    let res = get(format!("path={}/src", here.display()), true).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-disposition"], "attachment; filename=\"src.tar.gz\"");
    let tarball = res.bytes().await.unwrap();
    let listing = std::process::Command::new("tar")
        .args(["-tzf", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(&tarball)?;
            child.wait_with_output()
        })
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("src/nested/blob.bin") && listing.contains("src/main.rs"), "{listing}");
    // Missing, hostile, anonymous.
    assert_eq!(get("session=dl&path=nope".into(), true).await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(get("session=dl&path=".into(), true).await.unwrap().status(), StatusCode::BAD_REQUEST);
    assert_eq!(get("session=dl&path=src/main.rs".into(), false).await.unwrap().status(), StatusCode::UNAUTHORIZED);
}
