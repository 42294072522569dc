//! The web UI in a real headless browser: Debian's Chromium driven through
//! WebDriver (Debian's chromedriver, fantoccini as the client) against the
//! real binary. Two tags are recorded with curl through the proxy first;
//! the browser logs in through the form (a wrong token is refused), reads
//! the dashboard's counters of a live playback session, opens a tag,
//! filters and sorts it, downloads a body (byte-identical; cut short when
//! the stored body was altered), diffs the two
//! tags, has a form without its CSRF token refused, logs out, and loses
//! its session when its token is revoked. A second browser session
//! declares a file on the mirror page through its form and reloads until
//! the server's fetcher has stored it; a tag-only image and a blank note
//! are refused with the reason, and so is a read token's declaration.
//! Screenshots of each page go to `target/ui-screenshots/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use btrfly_test_support::*;
use fantoccini::{Client, ClientBuilder, Locator};

const FILES: &str = "files.example.test";

/// Where the screenshots go.
fn screenshot_dir() -> PathBuf {
    repo_root().join("target/ui-screenshots")
}

async fn shot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let path = screenshot_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

async fn text_of(browser: &Client, css: &str) -> String {
    browser
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
        .text()
        .await
        .expect("text")
}

async fn texts(browser: &Client, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in browser.find_all(Locator::Css(css)).await.expect("find_all") {
        out.push(e.text().await.expect("text"));
    }
    out
}

/// Submits the login form with `token`.
async fn log_in(browser: &Client, base: &str, token: &str) {
    browser
        .goto(&format!("{base}/ui/login"))
        .await
        .expect("login page");
    let form = browser
        .form(Locator::Css("form.login"))
        .await
        .expect("the login form");
    form.set_by_name("token", token)
        .await
        .expect("type the token")
        .submit()
        .await
        .expect("submit");
}

/// A client of the server with its own BTRFLY_HOME.
fn cli(server: &BtrflyServer, home: &Path, args: &[&str]) -> Command {
    let mut c = server.cli(home);
    c.args(args);
    c
}

/// Records `files` (paths under /files/) into `tag`, with curl through the
/// proxy of a `btrfly start record` session.
fn record(server: &BtrflyServer, nginx: &Nginx, home: &Path, tag: &str, files: &[&str]) {
    let out = run_ok(&mut cli(
        server,
        home,
        &["start", "record", &format!("--tag={tag}")],
    ));
    let env = server.env_from_start(&text(&out.stdout));
    for f in files {
        curl(&env, &nginx.url(FILES, &format!("/files/{f}")));
    }
    let out = run_ok(&mut cli(server, home, &["stop", "record"]));
    assert_eq!(field(&text(&out.stderr), "misses"), 0);
}

fn curl(env: &[(String, String)], url: &str) -> Vec<u8> {
    let mut c = Command::new("curl");
    client_env(&mut c);
    apply_env(&mut c, env).args(["-sS", "--fail", "--max-time", "60", url]);
    run_ok(&mut c).stdout
}

#[test]
fn the_web_ui_in_a_headless_browser() {
    std::fs::create_dir_all(screenshot_dir()).expect("screenshot dir");
    let root = tempfile::tempdir().expect("root");
    let files = root.path().join("files");
    std::fs::create_dir_all(&files).expect("files");
    std::fs::write(files.join("a.txt"), "stays the same\n").expect("a");
    std::fs::write(files.join("b.txt"), "version one\n").expect("b");
    std::fs::write(files.join("d.txt"), "only before\n").expect("d");
    let c_body = "only after, and a little longer than the others\n".repeat(40);
    std::fs::write(files.join("c.txt"), &c_body).expect("c");
    let ca = TestCa::new();
    let nginx = Nginx::start(root.path(), &ca, &[FILES]);
    let server = BtrflyServer::start(
        bin(),
        &format!(
            "[upstream]\nca_file = {}\n[upstream.resolve]\n\"{FILES}\" = \"127.0.0.1\"\n",
            BtrflyServer::toml_str(nginx.ca_file().to_string_lossy())
        ),
    );
    let work = tempfile::tempdir().expect("work");
    let home = work.path();

    // Two recordings: b.txt changes, d.txt goes, c.txt comes.
    record(
        &server,
        &nginx,
        home,
        "before",
        &["a.txt", "b.txt", "d.txt"],
    );
    std::fs::write(files.join("b.txt"), "version two\n").expect("b");
    record(&server, &nginx, home, "after", &["a.txt", "b.txt", "c.txt"]);

    // A live playback session that has served one hit.
    let out = run_ok(&mut cli(
        &server,
        home,
        &["start", "playback", "--tag=after"],
    ));
    let playback = server.env_from_start(&text(&out.stdout));
    assert_eq!(
        curl(&playback, &nginx.url(FILES, "/files/c.txt")),
        c_body.as_bytes()
    );

    // The CLI's tokens work in the browser: a read token, made by the admin.
    let out = run_ok(&mut cli(
        &server,
        home,
        &["token", "create", "--name", "viewer", "--scope", "read"],
    ));
    let viewer = text(&out.stdout).trim().to_owned();
    let base = server.control_url();

    let driver = ChromeDriver::start(&screenshot_dir());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(driver.capabilities())
            .connect(&driver.url())
            .await
            .unwrap_or_else(|e| panic!("a WebDriver session: {e}\n{}", driver.log()));

        // Not signed in: every page leads to the login form.
        browser.goto(&format!("{base}/")).await.expect("goto /");
        browser
            .wait()
            .for_element(Locator::Css("form.login"))
            .await
            .expect("redirected to the login form");
        assert_eq!(
            browser.current_url().await.expect("url").path(),
            "/ui/login"
        );
        shot(&browser, "01-login").await;

        // A wrong token is refused, and signs nobody in.
        log_in(&browser, &base, &"0".repeat(48)).await;
        let said = text_of(&browser, "p.error").await;
        assert_eq!(said, "Wrong, revoked or unknown token.");
        shot(&browser, "02-wrong-token").await;
        browser.goto(&format!("{base}/ui/")).await.expect("goto");
        browser
            .wait()
            .for_element(Locator::Css("form.login"))
            .await
            .expect("still not signed in");

        // The read token signs in: the dashboard.
        log_in(&browser, &base, &viewer).await;
        let who = text_of(&browser, "header .who").await;
        assert_eq!(who, "signed in as viewer (read)");
        assert_eq!(browser.current_url().await.expect("url").path(), "/ui/");
        let source = browser.source().await.expect("source");
        assert!(!source.contains(&viewer), "a page never shows a token");
        assert!(!source.contains(&server.token()));
        assert!(
            !source.contains("PRIVATE KEY"),
            "a page never shows the CA key"
        );
        // Tags with their entry counts and sizes.
        assert_eq!(
            text_of(&browser, "tr[data-tag=before] td.entries").await,
            "3"
        );
        assert_eq!(
            text_of(&browser, "tr[data-tag=after] td.entries").await,
            "3"
        );
        let after_bytes = 15 + 12 + c_body.len();
        let size = browser
            .find(Locator::Css("tr[data-tag=after] td.size"))
            .await
            .expect("size cell");
        assert_eq!(
            size.attr("title").await.expect("title"),
            Some(format!("{after_bytes} bytes"))
        );
        // The live session and its counters: one request, one hit.
        let session_id = playback
            .iter()
            .find(|(k, _)| k == "BTRFLY_SESSION")
            .map(|(_, v)| v.clone());
        let row = match &session_id {
            Some(id) => format!("tr[data-session='{id}']"),
            None => "#sessions tbody tr".to_owned(),
        };
        assert_eq!(text_of(&browser, &format!("{row} td.requests")).await, "1");
        assert_eq!(text_of(&browser, &format!("{row} td.hits")).await, "1");
        assert_eq!(text_of(&browser, &format!("{row} td.misses")).await, "0");
        assert_eq!(text_of(&browser, "dd.backend").await, "fs");
        shot(&browser, "03-dashboard").await;

        // A tag's page: every entry, then filtered through the search form.
        browser
            .find(Locator::Css("tr[data-tag=after] a"))
            .await
            .expect("the tag's link")
            .click()
            .await
            .expect("open the tag");
        browser
            .wait()
            .for_element(Locator::Css("table#entries"))
            .await
            .expect("the tag page");
        let urls = texts(&browser, "#entries td.url").await;
        assert_eq!(urls.len(), 3, "{urls:?}");
        let search = browser
            .form(Locator::Css("form.search"))
            .await
            .expect("search form");
        search
            .set_by_name("q", "c.txt")
            .await
            .expect("type the search")
            .submit()
            .await
            .expect("filter");
        browser
            .wait()
            .for_element(Locator::Css("a.clear"))
            .await
            .expect("the filtered page");
        let url = browser.current_url().await.expect("url");
        assert!(url.query().unwrap_or_default().contains("q=c.txt"), "{url}");
        let urls = texts(&browser, "#entries td.url").await;
        assert_eq!(urls, [format!("GET {}", nginx.url(FILES, "/files/c.txt"))]);
        assert_eq!(text_of(&browser, "#count").await, "1 of 3 entries match");
        shot(&browser, "04-tag-filtered").await;

        // The download link serves the recorded body, byte for byte.
        let href = browser
            .find(Locator::Css("#entries a.download"))
            .await
            .expect("download link")
            .attr("href")
            .await
            .expect("href")
            .expect("an href");
        let cookie = browser
            .get_named_cookie("btrfly_ui")
            .await
            .expect("the session cookie");
        assert!(cookie.http_only().unwrap_or(false), "HttpOnly");
        assert_eq!(
            cookie.same_site().map(|s| s.to_string()).as_deref(),
            Some("Strict")
        );
        let session_cookie = format!("btrfly_ui={}", cookie.value());
        let out = run_ok(client_env(&mut Command::new("curl")).args([
            "-sS",
            "--fail",
            "--max-time",
            "30",
            "-D",
            "/dev/stderr",
            "-b",
            &session_cookie,
            &format!("{base}{href}"),
        ]));
        assert_eq!(sha256_bytes(&out.stdout), sha256_bytes(c_body.as_bytes()));
        let head = text(&out.stderr).to_ascii_lowercase();
        assert!(
            head.contains("content-disposition: attachment; filename=\"c.txt\""),
            "{head}"
        );
        assert!(
            head.contains("content-type: application/octet-stream"),
            "{head}"
        );
        // A body the store altered is never delivered whole: cut short.
        let digest = sha256_bytes(c_body.as_bytes());
        let blob = server
            .store_dir()
            .join("blobs/sha256")
            .join(&digest[..2])
            .join(&digest);
        let mut altered = c_body.clone().into_bytes();
        altered[0] ^= 1;
        std::fs::write(&blob, &altered).expect("alter the stored body");
        let out = run(client_env(&mut Command::new("curl")).args([
            "-sS",
            "--max-time",
            "30",
            "-b",
            &session_cookie,
            &format!("{base}{href}"),
        ]));
        assert!(
            !out.status.success(),
            "an altered body is a failed download"
        );
        assert!(
            out.stdout.len() < altered.len(),
            "the download is cut short"
        );
        std::fs::write(&blob, c_body.as_bytes()).expect("put the body back");

        // Sorted by size, largest first: two clicks on the column heading.
        browser
            .goto(&format!("{base}/ui/tags/after"))
            .await
            .expect("tag");
        for _ in 0..2 {
            browser
                .find(Locator::Css("a.sort[data-column=size]"))
                .await
                .expect("size heading")
                .click()
                .await
                .expect("sort");
        }
        browser
            .wait()
            .for_url(
                &format!("{base}/ui/tags/after?sort=size&order=desc")
                    .parse()
                    .expect("url"),
            )
            .await
            .expect("sorted descending");
        let urls = texts(&browser, "#entries td.url").await;
        assert!(urls[0].ends_with("/files/c.txt"), "{urls:?}");
        assert!(urls[2].ends_with("/files/b.txt"), "{urls:?}");

        // The diff page: two tags chosen in the form.
        browser
            .goto(&format!("{base}/ui/diff"))
            .await
            .expect("diff");
        let form = browser
            .form(Locator::Css("form.diff"))
            .await
            .expect("diff form");
        browser
            .find(Locator::Css("select#a"))
            .await
            .expect("a")
            .select_by_value("before")
            .await
            .expect("choose a");
        browser
            .find(Locator::Css("select#b"))
            .await
            .expect("b")
            .select_by_value("after")
            .await
            .expect("choose b");
        form.submit().await.expect("compare");
        let verdict = text_of(&browser, "#verdict").await;
        assert_eq!(verdict, "1 added, 1 removed, 1 changed, 1 unchanged");
        let added = texts(&browser, "#diff tr.added td.url").await;
        let removed = texts(&browser, "#diff tr.removed td.url").await;
        let changed = texts(&browser, "#diff tr.changed").await;
        assert_eq!(added, [format!("GET {}", nginx.url(FILES, "/files/c.txt"))]);
        assert_eq!(
            removed,
            [format!("GET {}", nginx.url(FILES, "/files/d.txt"))]
        );
        assert_eq!(changed.len(), 1);
        assert!(changed[0].contains("/files/b.txt"), "{changed:?}");
        shot(&browser, "05-diff").await;

        // A form without its CSRF token is refused, and does nothing.
        browser
            .execute(
                "document.querySelector('form.logout input[name=csrf]').remove()",
                vec![],
            )
            .await
            .expect("remove the CSRF field");
        browser
            .find(Locator::Css("form.logout button"))
            .await
            .expect("logout button")
            .click()
            .await
            .expect("submit without CSRF");
        let said = text_of(&browser, "p.error").await;
        assert!(
            said.contains("its CSRF token is missing or does not match"),
            "{said}"
        );
        shot(&browser, "06-csrf-refused").await;
        browser
            .goto(&format!("{base}/ui/"))
            .await
            .expect("dashboard");
        assert_eq!(
            text_of(&browser, "header .who").await,
            "signed in as viewer (read)",
            "the refused logout did nothing"
        );
        // Nor does a POST from outside the browser with only the cookie.
        let out = run(client_env(&mut Command::new("curl")).args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "30",
            "-b",
            &session_cookie,
            "-X",
            "POST",
            &format!("{base}/ui/logout"),
        ]));
        assert_eq!(text(&out.stdout), "403");

        // Logging out ends the session.
        browser
            .find(Locator::Css("form.logout button"))
            .await
            .expect("logout button")
            .click()
            .await
            .expect("log out");
        assert_eq!(text_of(&browser, "p.error").await, "You are logged out.");
        let out = run(client_env(&mut Command::new("curl")).args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            "--max-time",
            "30",
            "-b",
            &session_cookie,
            &format!("{base}/ui/"),
        ]));
        assert!(
            text(&out.stdout).starts_with("303 ") && text(&out.stdout).contains("/ui/login"),
            "the old session cookie is dead: {}",
            text(&out.stdout)
        );

        // Revoking the token ends the sessions made with it.
        log_in(&browser, &base, &viewer).await;
        text_of(&browser, "section#tags").await;
        let listed = run_ok(&mut cli(&server, home, &["token", "ls", "--json"]));
        let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
        let id = listed["tokens"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["name"] == "viewer"))
            .and_then(|t| t["id"].as_str())
            .expect("the viewer token's id")
            .to_owned();
        run_ok(&mut cli(&server, home, &["token", "revoke", &id]));
        browser
            .goto(&format!("{base}/ui/"))
            .await
            .expect("dashboard");
        assert_eq!(
            text_of(&browser, "p.error").await,
            "The token of your session was revoked: log in with another."
        );
        shot(&browser, "07-revoked").await;

        browser.close().await.expect("close the browser");
    });
    run_ok(&mut cli(&server, home, &["stop", "playback"]));
    nginx.stop();
}

/// Fills the mirror page's form with `source`, `sha256` and `note`, and
/// submits it.
async fn declare(browser: &Client, base: &str, source: &str, sha256: &str, note: &str) {
    browser
        .goto(&format!("{base}/ui/mirror"))
        .await
        .expect("the mirror page");
    let form = browser
        .form(Locator::Css("form.mirror"))
        .await
        .expect("the mirror form");
    form.set_by_name("source", source)
        .await
        .expect("type the source")
        .set_by_name("sha256", sha256)
        .await
        .expect("type the sha256")
        .set_by_name("note", note)
        .await
        .expect("type the note")
        .submit()
        .await
        .expect("submit");
}

#[test]
fn the_mirror_page_declares_entries_and_follows_them_to_stored() {
    std::fs::create_dir_all(screenshot_dir()).expect("screenshot dir");
    let root = tempfile::tempdir().expect("root");
    let files = root.path().join("files");
    std::fs::create_dir_all(&files).expect("files");
    let tool = write_random_file(&files.join("tool.bin"), 100_000, 7);
    let ca = TestCa::new();
    let nginx = Nginx::start(root.path(), &ca, &[FILES]);
    let server = BtrflyServer::start(
        bin(),
        &format!(
            "[upstream]\nca_file = {}\n[upstream.resolve]\n\"{FILES}\" = \"127.0.0.1\"\n",
            BtrflyServer::toml_str(nginx.ca_file().to_string_lossy())
        ),
    );
    let work = tempfile::tempdir().expect("work");
    let home = work.path();
    let token = |name: &str, scope: &str| {
        let out = run_ok(&mut cli(
            &server,
            home,
            &["token", "create", "--name", name, "--scope", scope],
        ));
        text(&out.stdout).trim().to_owned()
    };
    let builder = token("builder", "record");
    let viewer = token("viewer", "read");
    let base = server.control_url();
    let url = nginx.url(FILES, "/files/tool.bin");
    let note = "the firmware build's cross compiler";

    let driver = ChromeDriver::start(work.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(driver.capabilities())
            .connect(&driver.url())
            .await
            .unwrap_or_else(|e| panic!("a WebDriver session: {e}\n{}", driver.log()));

        // A record token declares a file through the form.
        log_in(&browser, &base, &builder).await;
        text_of(&browser, "header .who").await;
        browser
            .find(Locator::LinkText("Mirror"))
            .await
            .expect("the navigation's mirror link")
            .click()
            .await
            .expect("open the mirror page");
        text_of(&browser, "form.mirror").await;
        declare(&browser, &base, &url, "", note).await;
        let said = text_of(&browser, "#notice").await;
        assert!(
            said.starts_with("Entry ") && said.contains(&format!("added: the server is fetching {url}")),
            "{said}"
        );
        assert_eq!(
            browser.current_url().await.expect("url").path(),
            "/ui/mirror",
            "redirected back to the page"
        );

        // Reloaded until the fetcher has stored it (at most 60 s).
        let row = "#mirror tbody tr";
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            browser.refresh().await.expect("reload");
            let state = text_of(&browser, &format!("{row} td.state .state")).await;
            if state == "stored" {
                break;
            }
            assert_eq!(state, "pending", "{}", text_of(&browser, row).await);
            assert!(
                std::time::Instant::now() < deadline,
                "the entry is still {state} after 60 s"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert_eq!(texts(&browser, row).await.len(), 1);
        assert_eq!(text_of(&browser, &format!("{row} td.note")).await, note);
        assert_eq!(text_of(&browser, &format!("{row} td.by")).await, "builder");
        assert!(
            text_of(&browser, &format!("{row} td.source")).await.contains(&url),
            "the source is shown"
        );
        // The stored body's sha256, and its download link.
        let sha = browser
            .find(Locator::Css(&format!("{row} td.sha code")))
            .await
            .expect("the sha256 cell");
        assert_eq!(sha.attr("title").await.expect("title"), Some(tool.clone()));
        shot(&browser, "08-mirror").await;
        let href = browser
            .find(Locator::Css(&format!("{row} a.download")))
            .await
            .expect("the stored body's download link")
            .attr("href")
            .await
            .expect("href")
            .expect("an href");
        let cookie = browser
            .get_named_cookie("btrfly_ui")
            .await
            .expect("the session cookie");
        let out = run_ok(client_env(&mut Command::new("curl")).args([
            "-sS",
            "--fail",
            "--max-time",
            "30",
            "-b",
            &format!("btrfly_ui={}", cookie.value()),
            &format!("{base}{href}"),
        ]));
        assert_eq!(sha256_bytes(&out.stdout), tool, "the stored body, byte for byte");

        // The same entry through the CLI's JSON API: who and why.
        let out = run_ok(&mut cli(&server, home, &["mirror", "ls", "--json"]));
        let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let entries = listed["entries"].as_array().expect("entries");
        assert_eq!(entries.len(), 1, "{listed}");
        assert_eq!(entries[0]["added_by"], "builder");
        assert_eq!(entries[0]["note"], note);
        assert_eq!(entries[0]["state"], "stored");

        // The dashboard counts it.
        browser.goto(&format!("{base}/ui/")).await.expect("dashboard");
        assert_eq!(text_of(&browser, "dd.mirror-stored").await, "1");
        assert_eq!(text_of(&browser, "dd.mirror-failed").await, "0");

        // An image by tag is refused with why digests are required, and
        // the form comes back filled in.
        let by_tag = "registry.example.test:5000/team/app:1.0";
        declare(&browser, &base, by_tag, "", "the CI build image").await;
        let said = text_of(&browser, "#notice.error").await;
        assert!(
            said.contains("images are mirrored by digest only, because a tag is a name its publisher can move"),
            "{said}"
        );
        let source = browser
            .find(Locator::Css("input#source"))
            .await
            .expect("source field");
        assert_eq!(source.prop("value").await.expect("value").as_deref(), Some(by_tag));
        shot(&browser, "09-mirror-tag-refused").await;
        // A blank note is refused.
        declare(&browser, &base, &url, "", "   ").await;
        let said = text_of(&browser, "#notice.error").await;
        assert!(said.contains("needs a note saying why it is needed"), "{said}");
        assert_eq!(texts(&browser, row).await.len(), 1, "nothing was added");

        // A read token may look, not declare.
        browser
            .find(Locator::Css("form.logout button"))
            .await
            .expect("logout button")
            .click()
            .await
            .expect("log out");
        text_of(&browser, "form.login").await;
        log_in(&browser, &base, &viewer).await;
        text_of(&browser, "header .who").await;
        declare(&browser, &base, &url, "", "a second copy").await;
        let said = text_of(&browser, "p.error").await;
        assert_eq!(
            said,
            "this needs a token with the record scope; the token viewer has read"
        );
        browser.goto(&format!("{base}/ui/mirror")).await.expect("mirror");
        assert_eq!(texts(&browser, row).await.len(), 1, "nothing was added");

        browser.close().await.expect("close the browser");
    });
    let out = run_ok(&mut cli(&server, home, &["mirror", "ls", "--json"]));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(listed["entries"].as_array().map(Vec::len), Some(1));
    nginx.stop();
}
