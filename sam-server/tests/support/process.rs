//! Helpers for tests that run `sam-server` as a process: the OAuth sign-in
//! against the GitHub emulator, and a graceful stop.

#![allow(dead_code)] // each test binary uses the part it needs

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use sam_providers::emulators::Emulators;

/// Signs the emulator's user in at `base` through the real OAuth flow;
/// returns the session cookie (`name=value`).
pub async fn sign_in(client: &reqwest::Client, base: &str, emulators: &Emulators) -> String {
    let start = client.get(format!("{base}/api/auth/github")).send().await.unwrap();
    assert_eq!(start.status(), StatusCode::FOUND);
    let location = reqwest::Url::parse(start.headers()[LOCATION].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(emulators.github.base_url()), "{location}");
    let param = |name: &str| location.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned()).unwrap();
    let oauth_cookie = start.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    let code = emulators.github.approve(&param("redirect_uri"), Some(&param("code_challenge")));
    let callback = client
        .get(format!("{base}/api/auth/callback/github?code={code}&state={}", param("state")))
        .header(COOKIE, oauth_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(callback.status(), StatusCode::FOUND);
    callback
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("sam_session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// Sends SIGTERM and asserts the server exits 0 within 20 s.
pub async fn terminate(mut child: tokio::process::Child) {
    let pid = child.id().unwrap();
    let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), child.wait()).await.expect("exits").unwrap();
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");
}

/// Listening sockets bound here and handed to a `sam-server` child the way
/// systemd hands them over (`LISTEN_FDS`, fd 3 onwards): the port is the
/// test's from the start, with no window between choosing it and serving on
/// it in which another process could take it.
pub struct HandedSockets {
    listeners: Vec<std::net::TcpListener>,
}

impl HandedSockets {
    /// `n` sockets on free loopback ports.
    pub fn bind(n: usize) -> Self {
        Self { listeners: (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect() }
    }

    /// The same sockets again (duplicated descriptors): how systemd keeps a
    /// socket unit's listener across its service's restarts, so clients see
    /// one address throughout.
    pub fn try_clone(&self) -> Self {
        Self { listeners: self.listeners.iter().map(|l| l.try_clone().unwrap()).collect() }
    }

    /// The port of socket `index`.
    pub fn port(&self, index: usize) -> u16 {
        self.listeners[index].local_addr().unwrap().port()
    }

    /// Makes the sockets the child's fd 3, 4, … and says so in `LISTEN_FDS`.
    pub fn hand_to(self, command: &mut tokio::process::Command) {
        use command_fds::{CommandFdExt as _, FdMapping};
        let count = self.listeners.len();
        let mappings = self
            .listeners
            .into_iter()
            .zip(3..)
            .map(|(listener, child_fd)| FdMapping { parent_fd: listener.into(), child_fd })
            .collect();
        command.fd_mappings(mappings).unwrap();
        command.env("LISTEN_FDS", count.to_string()).env_remove("LISTEN_PID");
    }
}
