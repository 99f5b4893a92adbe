//! `coachd trainer add/list` and `coachd share`.

use super::Failure;
use crate::config::Config;
use crate::store::Store;
use crate::web::auth::{check_password, hash_password};
use std::io::{BufRead, IsTerminal, Write};

/// Read a line from the terminal without echoing it.
fn read_hidden(prompt: &str) -> Result<String, Failure> {
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

pub async fn add(store: &Store, name: &str, password_stdin: bool) -> Result<(), Failure> {
    let password = if password_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::Runtime(anyhow::anyhow!("reading the password from stdin: {e}")))?;
        line.trim_end_matches(['\n', '\r']).to_string()
    } else {
        let first = read_hidden(&format!("password for {name}: "))?;
        check_password(&first).map_err(Failure::Input)?;
        let again = read_hidden("again: ")?;
        if again != first {
            return Err(Failure::Input("the two passwords differ; nothing changed".into()));
        }
        first
    };
    check_password(&password).map_err(Failure::Input)?;
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("hashing the password: {e}")))??;
    let (trainer, created) = store.upsert_trainer(name, &hash).await?;
    let adopted = store.adopt_unassigned(trainer.id).await?;
    if created {
        println!("added trainer {} (#{})", trainer.name, trainer.id);
    } else {
        println!("new password for trainer {}; their other sessions are logged out", trainer.name);
    }
    if adopted > 0 {
        println!("{} now sees {adopted} client(s) that had no trainer", trainer.name);
    }
    Ok(())
}

pub async fn list(store: &Store) -> Result<(), Failure> {
    let trainers = store.trainers().await?;
    if trainers.is_empty() {
        println!("no trainers yet; add one with `coachd trainer add NAME`");
        return Ok(());
    }
    let clients = store.list_clients().await?;
    println!("{:<24} {:>8}", "TRAINER", "CLIENTS");
    for t in trainers {
        println!("{:<24} {:>8}", t.name, clients.iter().filter(|c| c.trainer_id == Some(t.id)).count());
    }
    let orphans = clients.iter().filter(|c| c.trainer_id.is_none()).count();
    if orphans > 0 {
        println!("{orphans} client(s) have no trainer and show in no dashboard");
    }
    Ok(())
}

pub async fn share(store: &Store, config: &Config, client: &str, revoke: bool) -> Result<(), Failure> {
    let client = store.client_by_name(client).await?;
    if revoke {
        let n = store.revoke_share_links(client.id).await?;
        println!("revoked {n} link(s) of {}", client.name);
        return Ok(());
    }
    let token = store.new_share_link(client.id).await?;
    println!("{}/c/{token}", config.web.base_url());
    eprintln!(
        "{}'s private page: their charts, this week's homework and check-ins. Shown only now; \
         `coachd share {} --revoke` ends it.",
        client.name, client.name
    );
    Ok(())
}
