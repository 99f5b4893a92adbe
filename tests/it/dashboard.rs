//! The dashboard over real HTTP: no page or API without a session, trainers see only
//! their own clients, a client link reaches only its client, forms without the CSRF
//! token are refused, wrong passwords are throttled.

use crate::{batch, hour_run, TestStore};
use chrono::{Duration, Utc};
use reqwest::redirect::Policy;
use reqwest::StatusCode;

pub struct Site {
    pub ts: TestStore,
    pub base: String,
    /// Client ids: trainer A's and trainer B's.
    pub a_client: i64,
    pub b_client: i64,
    pub a_homework: i64,
    pub b_homework: i64,
}

pub const PASSWORD_A: &str = "first trainer's password";
pub const PASSWORD_B: &str = "second trainer's password";

/// Two trainers with a client each, served on a random port.
pub async fn site() -> Site {
    let ts = TestStore::new().await;
    let store = &ts.store;
    let (a, _) =
        store.upsert_trainer("anna", &coachd::crypto::hash_password(PASSWORD_A).expect("hash")).await.expect("trainer");
    let (b, _) =
        store.upsert_trainer("ben", &coachd::crypto::hash_password(PASSWORD_B).expect("hash")).await.expect("trainer");
    let a_client = ts.client("alex").await;
    let b_client = ts.client("bea").await;
    store.set_client_trainer(a_client, Some(a.id)).await.expect("assign");
    store.set_client_trainer(b_client, Some(b.id)).await.expect("assign");
    let today = Utc::now().date_naive();
    let rule = coachd::engine::phrase::parse("15 minutes of cardio").expect("phrase");
    let a_homework =
        store.add_homework(a_client, &rule, today - Duration::days(20), None).await.expect("hw").homework.id;
    let rule = coachd::engine::phrase::parse("10 push-ups every night").expect("phrase");
    let b_homework =
        store.add_homework(b_client, &rule, today - Duration::days(20), None).await.expect("hw").homework.id;
    let run = hour_run(a_client, "a-run", Utc::now() - Duration::days(2));
    store.ingest(&batch("fit", vec![run], None)).await.expect("ingest");
    let run = hour_run(b_client, "b-run", Utc::now() - Duration::days(2));
    store.ingest(&batch("fit", vec![run], None)).await.expect("ingest");
    let base = ts.serve().await;
    Site { ts, base, a_client, b_client, a_homework, b_homework }
}

pub fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(Policy::none()).build().expect("client")
}

/// Whether a page shows `name` as a word (not inside a random token, which may hold
/// "bea" as well as any other run of hex digits).
pub fn names(page: &str, name: &str) -> bool {
    page.match_indices(name).any(|(at, _)| {
        let before = page[..at].chars().next_back().is_none_or(|c| !c.is_ascii_alphanumeric());
        let after = page[at + name.len()..].chars().next().is_none_or(|c| !c.is_ascii_alphanumeric());
        before && after
    })
}

/// The value of the first `name="csrf"` field of a page.
pub fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().expect("value").to_string()
}

/// Log in; returns the session's CSRF token (from the roster page).
pub async fn login(site: &Site, http: &reqwest::Client, name: &str, password: &str) -> String {
    let page = http.get(format!("{}/login", site.base)).send().await.expect("login page").text().await.expect("body");
    let r = http
        .post(format!("{}/login", site.base))
        .form(&[("csrf", csrf_of(&page).as_str()), ("name", name), ("password", password)])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "login of {name}");
    let cookie = r.headers().get("set-cookie").expect("a session cookie").to_str().expect("ascii").to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let roster = http.get(format!("{}/roster", site.base)).send().await.expect("roster").text().await.expect("body");
    csrf_of(&roster)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_without_a_session() {
    let s = site().await;
    let http = browser();
    let (a, b) = (s.a_client, s.b_client);
    for path in [
        "/".to_string(),
        "/roster".into(),
        format!("/clients/{a}"),
        format!("/clients/{b}"),
        format!("/clients/{a}/charts/adherence.svg"),
        format!("/clients/{a}/workouts/1"),
        "/charts/roster.svg".into(),
    ] {
        let r = http.get(format!("{}{path}", s.base)).send().await.expect("get");
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(r.headers()["location"], "/login", "{path}");
    }
    for path in ["/api/clients".to_string(), format!("/api/clients/{a}/status"), format!("/api/clients/{a}/activities")]
    {
        let r = http.get(format!("{}{path}", s.base)).send().await.expect("get");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    // Forms without a session change nothing.
    let r = http
        .post(format!("{}/clients/{a}/homework", s.base))
        .form(&[("csrf", "x"), ("phrase", "8000 steps a day")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(s.ts.store.list_homework(Some(a)).await.expect("hw").len(), 1);
    // A forged session cookie is no session.
    let r = http
        .get(format!("{}/roster", s.base))
        .header("cookie", format!("coachd_session={}", "a".repeat(64)))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trainer_sees_only_their_own_clients() {
    let s = site().await;
    let http = browser();
    let csrf = login(&s, &http, "anna", PASSWORD_A).await;
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{}{path}", s.base);
        async move { http.get(url).send().await.expect("get") }
    };
    let roster = get("/roster".into()).await.text().await.expect("body");
    assert!(roster.contains("alex") && !names(&roster, "bea"), "{roster}");
    let api: serde_json::Value = get("/api/clients".into()).await.json().await.expect("json");
    let names: Vec<_> = api["clients"].as_array().expect("list").iter().map(|c| c["name"].clone()).collect();
    assert_eq!(names, vec![serde_json::json!("alex")]);
    let (a, b) = (s.a_client, s.b_client);
    assert_eq!(get(format!("/clients/{a}")).await.status(), StatusCode::OK);
    assert_eq!(get(format!("/api/clients/{a}/status")).await.status(), StatusCode::OK);
    // Ben's client, by guessing ids: 404 everywhere, as if it did not exist.
    for path in [
        format!("/clients/{b}"),
        format!("/clients/{b}/charts/adherence.svg"),
        format!("/clients/{b}/charts/session.png"),
        format!("/clients/{b}/workouts/2"),
        format!("/api/clients/{b}/status"),
        format!("/api/clients/{b}/activities"),
        format!("/api/clients/{b}/homework"),
        "/clients/999999".into(),
    ] {
        assert_eq!(get(path.clone()).await.status(), StatusCode::NOT_FOUND, "{path}");
    }
    // Ben's client's workout through Anna's client's URL: not found either.
    let ev = s
        .ts
        .store
        .evidence(b, chrono_tz::Europe::Berlin, Utc::now().date_naive() - Duration::days(5), Utc::now().date_naive())
        .await
        .expect("ev");
    let bens_workout = ev.workouts[0].id;
    assert_eq!(get(format!("/clients/{a}/workouts/{bens_workout}")).await.status(), StatusCode::NOT_FOUND);
    // Changing Ben's client with Anna's valid token: refused, nothing changed.
    for (path, form) in [
        (format!("/clients/{b}/homework"), vec![("csrf", csrf.clone()), ("phrase", "8000 steps a day".to_string())]),
        (format!("/clients/{b}/homework/{}/end", s.b_homework), vec![("csrf", csrf.clone())]),
        (format!("/clients/{a}/homework/{}/end", s.b_homework), vec![("csrf", csrf.clone())]),
        (format!("/clients/{b}/share"), vec![("csrf", csrf.clone()), ("action", "new".into())]),
    ] {
        let r = http.post(format!("{}{path}", s.base)).form(&form).send().await.expect("post");
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let bens = s.ts.store.list_homework(Some(b)).await.expect("hw");
    assert_eq!(bens.len(), 1);
    assert!(bens[0].homework.until.is_none(), "Ben's homework was not ended");
    assert_eq!(s.ts.store.live_share_links(b).await.expect("links"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_need_the_csrf_token() {
    let s = site().await;
    let http = browser();
    let csrf = login(&s, &http, "anna", PASSWORD_A).await;
    let a = s.a_client;
    let url = format!("{}/clients/{a}/homework", s.base);
    for form in [vec![("phrase", "8000 steps a day")], vec![("csrf", "0000"), ("phrase", "8000 steps a day")]] {
        let r = http.post(&url).form(&form).send().await.expect("post");
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    assert_eq!(s.ts.store.list_homework(Some(a)).await.expect("hw").len(), 1, "nothing assigned without the token");
    // The real token: assigned by phrase, echoed normalized.
    let r =
        http.post(&url).form(&[("csrf", csrf.as_str()), ("phrase", "8000 steps a day")]).send().await.expect("post");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let hw = s.ts.store.list_homework(Some(a)).await.expect("hw");
    assert_eq!(hw.len(), 2);
    assert_eq!(&*hw[1].homework.text, "8000 steps every day");
    // A bad phrase is explained, not stored: back to the form with the phrase in it, why,
    // and (for a misspelling) a one-click fix.
    let r = http.post(&url).form(&[("csrf", csrf.as_str()), ("phrase", "juggle a lot")]).send().await.expect("post");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let back = r.headers()["location"].to_str().expect("location").to_string();
    assert!(back.starts_with(&format!("/clients/{a}?")), "{back}");
    let page = http.get(format!("{}{back}", s.base)).send().await.expect("get").text().await.expect("body");
    assert!(
        page.contains("Not understood:") && page.contains("could not read") && page.contains("value=\"juggle a lot\""),
        "{page}"
    );
    let r = http
        .post(&url)
        .form(&[("csrf", csrf.as_str()), ("phrase", "150 minutes of cadio a week")])
        .send()
        .await
        .expect("post");
    let back = r.headers()["location"].to_str().expect("location").to_string();
    let page = http.get(format!("{}{back}", s.base)).send().await.expect("get").text().await.expect("body");
    assert!(page.contains("Did you mean") && page.contains("value=\"150 minutes of cardio per week\""), "{page}");
    // A forged error text in the link is never shown: the page reads the phrase again.
    let page = http
        .get(format!("{}/clients/{a}?phrase=8000%20steps%20a%20day&assign_error=<b>owned</b>", s.base))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("body");
    assert!(!page.contains("owned") && !page.contains("Not understood:"));
    assert_eq!(s.ts.store.list_homework(Some(a)).await.expect("hw").len(), 2, "nothing stored from refused phrases");
    let r = http
        .post(&url)
        .form(&[("csrf", csrf.as_str()), ("phrase", "150 minutes of cardio per week")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        &*s.ts.store.list_homework(Some(a)).await.expect("hw")[2].homework.text,
        "150 minutes of cardio per week"
    );
    // Logout needs it too.
    let r = http.post(format!("{}/logout", s.base)).form(&[("csrf", "wrong")]).send().await.expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // The login form has its own (double-submit) token.
    let fresh = browser();
    let r = fresh
        .post(format!("{}/login", s.base))
        .form(&[("name", "anna"), ("password", PASSWORD_A)])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = http.post(format!("{}/logout", s.base)).form(&[("csrf", csrf.as_str())]).send().await.expect("post");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(http.get(format!("{}/roster", s.base)).send().await.expect("get").status(), StatusCode::SEE_OTHER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_are_throttled() {
    let s = site().await;
    let http = browser();
    // Each attempt as a browser makes it: the login page (a fresh form token), then the form.
    let attempt = |password: &'static str| {
        let http = http.clone();
        let url = format!("{}/login", s.base);
        async move {
            let page = http.get(&url).send().await.expect("get").text().await.expect("body");
            let token = csrf_of(&page);
            http.post(url)
                .form(&[("csrf", token.as_str()), ("name", "anna"), ("password", password)])
                .send()
                .await
                .expect("post")
        }
    };
    for _ in 0..5 {
        assert_eq!(attempt("guess").await.status(), StatusCode::UNAUTHORIZED);
    }
    // Now even the right password waits.
    let r = attempt(PASSWORD_A).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(attempt(PASSWORD_A).await.status(), StatusCode::SEE_OTHER, "after the wait the right password works");
    // An unknown name fails the same way as a wrong password (a new form: the login
    // cleared the old form's cookie; a logged-in browser gets no login page).
    let other = browser();
    let page = other.get(format!("{}/login", s.base)).send().await.expect("get").text().await.expect("body");
    let r = other
        .post(format!("{}/login", s.base))
        .form(&[("csrf", csrf_of(&page).as_str()), ("name", "nobody"), ("password", "whatever it is")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_link_reaches_only_its_client() {
    let s = site().await;
    let token = s.ts.store.new_share_link(s.a_client).await.expect("link");
    let other = s.ts.store.new_share_link(s.b_client).await.expect("link");
    let http = browser();
    let page = http.get(format!("{}/c/{token}", s.base)).send().await.expect("get");
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.expect("body");
    assert!(page.contains("Hi alex") && !names(&page, "bea"));
    let svg = http.get(format!("{}/c/{token}/charts/adherence.svg", s.base)).send().await.expect("get");
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    // No workout pages, no roster, no trainer pages through a link.
    for path in [
        format!("/c/{token}/charts/session.svg"),
        format!("/c/{token}/charts/roster.svg"),
        format!("/c/{}/charts/adherence.svg", "0".repeat(64)),
        format!("/c/{}", "f".repeat(64)),
        "/c/short".into(),
    ] {
        let r = http.get(format!("{}{path}", s.base)).send().await.expect("get");
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let csrf = csrf_of(&page);
    let url = format!("{}/c/{token}/checkin", s.base);
    let form = |hw: i64, csrf: &str| {
        vec![
            ("csrf", csrf.to_string()),
            ("homework_id", hw.to_string()),
            ("day", "yesterday".into()),
            ("value", "20".into()),
        ]
    };
    // Without the form's token: refused. Another client's homework through this link: not found.
    assert_eq!(
        http.post(&url).form(&form(s.a_homework, "nope")).send().await.expect("post").status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        http.post(&url).form(&form(s.b_homework, &csrf)).send().await.expect("post").status(),
        StatusCode::NOT_FOUND
    );
    // The other link's token does not work for this link's forms.
    let other_page = http.get(format!("{}/c/{other}", s.base)).send().await.expect("get").text().await.expect("body");
    assert_eq!(
        http.post(&url).form(&form(s.a_homework, &csrf_of(&other_page))).send().await.expect("post").status(),
        StatusCode::FORBIDDEN
    );
    let r = http.post(&url).form(&form(s.a_homework, &csrf)).send().await.expect("post");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // The check-in is self-reported evidence for yesterday.
    let cfg = s.ts.config.homework.judge_config();
    let alex = s.ts.store.client_by_id(s.a_client).await.expect("client");
    let yesterday = Utc::now().with_timezone(&chrono_tz::Europe::Berlin).date_naive() - Duration::days(1);
    let (report, _) = coachd::status::status(&s.ts.store, &cfg, 0.2, &[alex], yesterday, yesterday, Utc::now())
        .await
        .expect("status");
    assert!(report.occurrences.iter().any(|o| o.self_reported && o.achieved >= 20.0), "{:?}", report.occurrences);
    assert!(s.ts.store.list_homework(Some(s.b_client)).await.expect("hw").iter().all(|h| h.homework.until.is_none()));
    // A habit no device sees is a one-tap tick on the link's page.
    let rule = coachd::engine::phrase::parse("no alcohol every day").expect("phrase");
    let today = Utc::now().with_timezone(&chrono_tz::Europe::Berlin).date_naive();
    let habit =
        s.ts.store.add_homework(s.a_client, &rule, today - Duration::days(3), None).await.expect("hw").homework.id;
    let page = http.get(format!("{}/c/{token}", s.base)).send().await.expect("get").text().await.expect("body");
    let habits = &page[page.find("id=\"habits\"").expect("a habits section")..];
    assert!(habits.contains("no alcohol every day") && habits.contains(&format!("value=\"{habit}\"")), "{habits}");
    assert!(
        !habits[..habits.find("</section>").expect("end")].contains("15 minutes of cardio"),
        "only habits are ticks"
    );
    let tick = [("csrf", csrf.as_str()), ("homework_id", &habit.to_string()), ("day", "today")];
    assert_eq!(http.post(&url).form(&tick).send().await.expect("post").status(), StatusCode::SEE_OTHER);
    let alex = s.ts.store.client_by_id(s.a_client).await.expect("client");
    let (report, _) =
        coachd::status::status(&s.ts.store, &cfg, 0.2, &[alex], today - Duration::days(2), today, Utc::now())
            .await
            .expect("status");
    let verdict = |d| report.occurrences.iter().find(|o| o.homework_id == habit && o.date == d).map(|o| o.verdict);
    assert_eq!(verdict(today), Some(coachd::engine::judge::Verdict::Done), "ticked today");
    // Two days back: yesterday stays pending for the judging grace (6 h) after midnight.
    assert_eq!(verdict(today - Duration::days(2)), Some(coachd::engine::judge::Verdict::Missed), "no tick then");
    // The weekly reflection.
    let r = http
        .post(format!("{}/c/{token}/reflection", s.base))
        .form(&[("csrf", csrf.as_str()), ("rating", "7"), ("note", "busy week")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(s.ts.store.reflections(s.a_client, 5).await.expect("reflections")[0].rating, 7);
    let r = http
        .post(format!("{}/c/{token}/reflection", s.base))
        .form(&[("csrf", csrf.as_str()), ("rating", "11")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Revoked: gone.
    s.ts.store.revoke_share_links(s.a_client).await.expect("revoke");
    assert_eq!(http.get(format!("{}/c/{token}", s.base)).send().await.expect("get").status(), StatusCode::NOT_FOUND);
    assert_eq!(http.get(format!("{}/c/{other}", s.base)).send().await.expect("get").status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_api_shapes() {
    let s = site().await;
    let http = browser();
    login(&s, &http, "anna", PASSWORD_A).await;
    let a = s.a_client;
    let status: serde_json::Value = http
        .get(format!("{}/api/clients/{a}/status?from=today", s.base))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert!(status["occurrences"].is_array() && status["adherence"].is_array(), "{status}");
    let acts: serde_json::Value = http
        .get(format!("{}/api/clients/{a}/activities", s.base))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(acts[0]["sources"], serde_json::json!(["fit"]));
    let bad = http.get(format!("{}/api/clients/{a}/status?from=tomorrowish", s.base)).send().await.expect("get");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let m = reqwest::get(format!("{}/metrics", s.base)).await.expect("get").text().await.expect("body");
    for family in [
        "coachd_up 1",
        "# TYPE coachd_verdicts gauge",
        "coachd_verdicts{verdict=",
        "coachd_clients 2",
        "coachd_trainers 2",
    ] {
        assert!(m.contains(family), "{family} in\n{m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_a_provider_from_the_client_page() {
    let s = site().await;
    let http = browser();
    let csrf = login(&s, &http, "anna", PASSWORD_A).await;
    let url = format!("{}/clients/{}/connect", s.base, s.a_client);
    let r = http.post(&url).form(&[("provider", "strava")]).send().await.expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "no CSRF token, no link");
    // Without the trainer's Strava app configured, the page says what to set.
    let r = http.post(&url).form(&[("csrf", csrf.as_str()), ("provider", "strava")]).send().await.expect("post");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.expect("body").contains("providers.strava.client_id"));
    let other = format!("{}/clients/{}/connect", s.base, s.b_client);
    let r = http.post(&other).form(&[("csrf", csrf.as_str()), ("provider", "strava")]).send().await.expect("post");
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "not for another trainer's client");
}
