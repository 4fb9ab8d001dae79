//! The GitHub emulator's JSON, in the shapes of GitHub's REST description
//! (`simple-user`, `private-user`, `repository`, `full-repository`,
//! `installation`, `short-branch`, `branch-with-protection`,
//! `rate-limit-overview`): every required field present, URLs on the
//! emulator's own base.

use serde_json::{Value, json};

use super::{EmulatedInstallation, EmulatedUser};

const EPOCH: &str = "2025-01-01T00:00:00Z";

/// A stable numeric id for a name (repositories have no configured id).
pub(super) fn id_of(name: &str) -> i64 {
    i64::from_str_radix(&sam_core::secret::sha256_hex(name.as_bytes())[..8], 16).unwrap_or(1)
}

/// A stable 40-hex commit id for a branch head.
pub(super) fn head_sha(full_name: &str, branch: &str) -> String {
    sam_core::secret::sha256_hex(format!("{full_name}@{branch}").as_bytes())[..40].to_owned()
}

/// `simple-user` (a user or an organization account).
pub(super) fn simple_user(base: &str, login: &str, id: i64, kind: &str) -> Value {
    let api = format!("{base}/users/{login}");
    json!({"login": login, "id": id, "node_id": format!("U_{id}"), "avatar_url": format!("{base}/avatars/{id}"),
        "gravatar_id": "", "url": api, "html_url": format!("{base}/{login}"),
        "followers_url": format!("{api}/followers"), "following_url": format!("{api}/following{{/other_user}}"),
        "gists_url": format!("{api}/gists{{/gist_id}}"), "starred_url": format!("{api}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{api}/subscriptions"), "organizations_url": format!("{api}/orgs"),
        "repos_url": format!("{api}/repos"), "events_url": format!("{api}/events{{/privacy}}"),
        "received_events_url": format!("{api}/received_events"), "type": kind, "site_admin": false,
        "user_view_type": "public"})
}

fn merge(target: &mut Value, extra: Value) {
    if let (Some(target), Value::Object(extra)) = (target.as_object_mut(), extra) {
        target.extend(extra);
    }
}

/// `private-user`: the signed-in user as `GET /user` shows them.
pub(super) fn private_user(base: &str, user: &EmulatedUser) -> Value {
    let mut value = simple_user(base, &user.login, user.id, "User");
    let extra = json!({"name": user.name, "company": null, "blog": "", "location": null, "email": null,
        "hireable": null, "bio": null, "twitter_username": null, "public_repos": 2, "public_gists": 0,
        "followers": 0, "following": 0, "created_at": EPOCH, "updated_at": EPOCH, "private_gists": 0,
        "total_private_repos": 2, "owned_private_repos": 2, "disk_usage": 1, "collaborators": 0,
        "two_factor_authentication": true, "user_view_type": "private",
        "plan": {"name": "free", "space": 976_562_499, "collaborators": 0, "private_repos": 10_000}});
    merge(&mut value, extra);
    value
}

/// The API URLs of a repository: key and path below it.
const REPOSITORY_URLS: &[(&str, &str)] = &[
    ("archive_url", "{archive_format}{/ref}"),
    ("assignees_url", "assignees{/user}"),
    ("blobs_url", "git/blobs{/sha}"),
    ("branches_url", "branches{/branch}"),
    ("collaborators_url", "collaborators{/collaborator}"),
    ("comments_url", "comments{/number}"),
    ("commits_url", "commits{/sha}"),
    ("compare_url", "compare/{base}...{head}"),
    ("contents_url", "contents/{+path}"),
    ("contributors_url", "contributors"),
    ("deployments_url", "deployments"),
    ("downloads_url", "downloads"),
    ("events_url", "events"),
    ("forks_url", "forks"),
    ("git_commits_url", "git/commits{/sha}"),
    ("git_refs_url", "git/refs{/sha}"),
    ("git_tags_url", "git/tags{/sha}"),
    ("hooks_url", "hooks"),
    ("issue_comment_url", "issues/comments{/number}"),
    ("issue_events_url", "issues/events{/number}"),
    ("issues_url", "issues{/number}"),
    ("keys_url", "keys{/key_id}"),
    ("labels_url", "labels{/name}"),
    ("languages_url", "languages"),
    ("merges_url", "merges"),
    ("milestones_url", "milestones{/number}"),
    ("notifications_url", "notifications{?since,all,participating}"),
    ("pulls_url", "pulls{/number}"),
    ("releases_url", "releases{/id}"),
    ("stargazers_url", "stargazers"),
    ("statuses_url", "statuses/{sha}"),
    ("subscribers_url", "subscribers"),
    ("subscription_url", "subscription"),
    ("tags_url", "tags"),
    ("teams_url", "teams"),
    ("trees_url", "git/trees{/sha}"),
];

/// `repository` (and, with `full`, `full-repository`).
pub(super) fn repository(
    base: &str,
    full_name: &str,
    owner: &Value,
    default_branch: &str,
    permissions: Option<(bool, bool)>,
    full: bool,
) -> Value {
    let id = id_of(full_name);
    let name = full_name.split('/').nth(1).unwrap_or(full_name);
    let api = format!("{base}/repos/{full_name}");
    let mut value = json!({
        "id": id, "node_id": format!("R_{id}"), "name": name, "full_name": full_name, "owner": owner,
        "private": true, "html_url": format!("{base}/{full_name}"), "description": null, "fork": false,
        "url": api, "git_url": format!("git://emulated/{full_name}.git"),
        "ssh_url": format!("git@emulated:{full_name}.git"), "clone_url": format!("{base}/{full_name}.git"),
        "mirror_url": null, "svn_url": format!("{base}/{full_name}")
    });
    if let Some(object) = value.as_object_mut() {
        for (key, suffix) in REPOSITORY_URLS {
            object.insert((*key).to_owned(), json!(format!("{api}/{suffix}")));
        }
    }
    merge(
        &mut value,
        json!({
            "homepage": null, "language": null, "forks_count": 0,
            "forks": 0, "stargazers_count": 0, "watchers_count": 0, "watchers": 0, "size": 108,
            "default_branch": default_branch, "open_issues_count": 0, "open_issues": 0, "is_template": false,
            "topics": [], "has_issues": true, "has_projects": false, "has_wiki": false, "has_pages": false,
            "has_downloads": true, "has_discussions": false, "archived": false, "disabled": false,
            "visibility": "private", "pushed_at": EPOCH, "created_at": EPOCH, "updated_at": EPOCH, "license": null,
            "allow_forking": false, "web_commit_signoff_required": false
        }),
    );
    if let Some((push, admin)) = permissions {
        value["permissions"] = json!({"admin": admin, "maintain": admin, "push": push, "triage": push, "pull": true});
    }
    if full {
        value["network_count"] = json!(0);
        value["subscribers_count"] = json!(1);
    }
    value
}

/// `installation`.
pub(super) fn installation(
    base: &str,
    i: &EmulatedInstallation,
    app_id: &str,
    app_slug: &str,
    client_id: &str,
) -> Value {
    let org = i.account_type == "Organization";
    let html = if org {
        format!("{base}/organizations/{}/settings/installations/{}", i.account_login, i.id)
    } else {
        format!("{base}/settings/installations/{}", i.id)
    };
    json!({"id": i.id, "account": simple_user(base, &i.account_login, i.account_id, &i.account_type),
        "repository_selection": "selected", "app_id": app_id.parse::<i64>().unwrap_or(0), "app_slug": app_slug,
        "client_id": client_id, "target_id": i.account_id, "target_type": i.account_type,
        "access_tokens_url": format!("{base}/app/installations/{}/access_tokens", i.id),
        "repositories_url": format!("{base}/installation/repositories"), "html_url": html,
        "permissions": {"contents": "read", "metadata": "read"}, "events": [],
        "created_at": EPOCH, "updated_at": EPOCH, "single_file_name": null,
        "has_multiple_single_files": false, "single_file_paths": [],
        "suspended_at": if i.suspended { json!("2025-06-01T00:00:00Z") } else { Value::Null },
        "suspended_by": if i.suspended { simple_user(base, &i.account_login, i.account_id, "User") } else { Value::Null }})
}

/// `short-branch`.
pub(super) fn short_branch(base: &str, full_name: &str, branch: &str) -> Value {
    let sha = head_sha(full_name, branch);
    json!({"name": branch, "commit": {"sha": sha, "url": format!("{base}/repos/{full_name}/commits/{sha}")},
           "protected": false})
}

/// `branch-with-protection`: the branch, its head commit, no protection.
pub(super) fn branch_with_protection(base: &str, full_name: &str, branch: &str) -> Value {
    let sha = head_sha(full_name, branch);
    let api = format!("{base}/repos/{full_name}");
    let tree = sam_core::secret::sha256_hex(format!("tree:{sha}").as_bytes())[..40].to_owned();
    let who = json!({"name": "SAM emulator", "email": "emulator@example.invalid", "date": EPOCH});
    json!({"name": branch, "protected": false,
        "commit": {"sha": sha, "node_id": format!("C_{sha}"), "url": format!("{api}/commits/{sha}"),
            "html_url": format!("{base}/{full_name}/commit/{sha}"), "comments_url": format!("{api}/commits/{sha}/comments"),
            "commit": {"url": format!("{api}/git/commits/{sha}"), "author": who, "committer": who,
                "message": "Initial commit", "comment_count": 0,
                "tree": {"sha": tree, "url": format!("{api}/git/trees/{tree}")}},
            "author": null, "committer": null, "parents": []},
        "_links": {"html": format!("{base}/{full_name}/tree/{branch}"), "self": format!("{api}/branches/{branch}")},
        "protection": {"enabled": false,
            "required_status_checks": {"enforcement_level": "off", "contexts": [], "checks": []}},
        "protection_url": format!("{api}/branches/{branch}/protection")})
}

/// `rate-limit` of one resource.
pub(super) fn rate(limit: u64, used: u64, reset: u64) -> Value {
    json!({"limit": limit, "used": used, "remaining": limit.saturating_sub(used), "reset": reset})
}
