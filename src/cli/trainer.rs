//! `coachd trainer add/list`, `coachd share` and `coachd push-token`.

use super::Failure;
use crate::app::App;
use std::io::{BufRead, IsTerminal, Write};

/// Read a line from the terminal without echoing it.
pub(super) fn read_hidden(prompt: &str) -> Result<String, Failure> {
    let io = |e: std::io::Error| Failure::Runtime(anyhow::anyhow!("reading the password: {e}"));
    eprint!("{prompt}");
    std::io::stderr().flush().map_err(io)?;
    let fd = libc::STDIN_FILENO;
    // SAFETY: termios is plain data, filled by tcgetattr before use; the same struct is
    // written back, so the terminal's settings are restored whatever happens in between.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    let echo_off = unsafe { libc::tcgetattr(fd, &mut saved) } == 0 && {
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) == 0 }
    };
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if echo_off {
        // SAFETY: see above.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
        eprintln!();
    }
    read.map_err(io)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// A password as the first line of stdin (`--password-stdin`, scripts).
pub(super) fn password_from_stdin() -> Result<String, Failure> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("reading the password from stdin: {e}")))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

pub async fn add(app: &App, name: &str, password_stdin: bool) -> Result<(), Failure> {
    let password = if password_stdin || !std::io::stdin().is_terminal() {
        password_from_stdin()?
    } else {
        let first = read_hidden(&format!("password for {name}: "))?;
        crate::crypto::check_password(&first).map_err(Failure::Input)?;
        let again = read_hidden("again: ")?;
        if again != first {
            return Err(Failure::Input("the two passwords differ; nothing changed".into()));
        }
        first
    };
    let added = app.add_trainer(name, password).await?;
    let t = &added.trainer;
    if added.created {
        println!("added trainer {} (#{})", t.name, t.id);
    } else {
        println!("new password for trainer {}; their other sessions are logged out", t.name);
    }
    if added.adopted > 0 {
        println!("{} now sees {} client(s) that had no trainer", t.name, added.adopted);
    }
    Ok(())
}

pub async fn list(app: &App) -> Result<(), Failure> {
    let (trainers, orphans) = app.trainer_lines().await?;
    if trainers.is_empty() {
        println!("no trainers yet; add one with `coachd trainer add NAME`");
        return Ok(());
    }
    println!("{:<24} {:>8}", "TRAINER", "CLIENTS");
    for t in trainers {
        println!("{:<24} {:>8}", t.name, t.clients);
    }
    if orphans > 0 {
        println!("{orphans} client(s) have no trainer and show in no dashboard");
    }
    Ok(())
}

pub async fn share(app: &App, client: &str, revoke: bool) -> Result<(), Failure> {
    let client = app.client(client).await?;
    if revoke {
        let n = app.revoke_share_links(&client).await?;
        println!("revoked {n} link(s) of {}", client.name);
        return Ok(());
    }
    println!("{}", app.new_share_link(&client).await?);
    if let Some(w) = app.link_warning() {
        eprintln!("note: {w}");
    }
    eprintln!(
        "{}'s private page: their charts, this week's homework and check-ins. Shown only now; \
         `coachd share {} --revoke` ends it.",
        client.name, client.name
    );
    Ok(())
}

pub async fn push_token(app: &App, client: &str, revoke: bool) -> Result<(), Failure> {
    let client = app.client(client).await?;
    if revoke {
        let n = app.revoke_push_tokens(&client).await?;
        println!("revoked {n} push token(s) of {}", client.name);
        return Ok(());
    }
    let token = app.new_push_token(&client).await?;
    println!("In Health Auto Export on {}'s iPhone: Automations → new → REST API", client.name);
    println!("  URL:     {}", app.push_url());
    println!("  Header:  Authorization: Bearer {token}");
    println!(
        "  Format:  JSON; data: Health Metrics (step_count, sleep_analysis, heart_rate, mindful_minutes) and Workouts"
    );
    println!("Earlier tokens of {} no longer work. The token is shown only now.", client.name);
    if let Some(w) = app.link_warning() {
        eprintln!("note: {w}");
    }
    Ok(())
}
