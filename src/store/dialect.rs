//! What differs between the two databases' SQL, spelled once.
//!
//! Statements are written in the SQL SQLite and PostgreSQL share, with `?` placeholders.
//! PostgreSQL numbers its placeholders (`$1`, `$2`, …), so [`postgres`] renumbers them;
//! `?` inside a quoted string or identifier, or in a comment, is left alone.

use std::borrow::Cow;

/// SQLite takes the statement as written.
pub(crate) fn sqlite(sql: &str) -> Cow<'_, str> {
    Cow::Borrowed(sql)
}

/// The statement with `?` and `?NNN` placeholders as PostgreSQL's `$N`.
pub(crate) fn postgres(sql: &str) -> Cow<'_, str> {
    if !sql.contains('?') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut next = 0usize;
    let mut chars = sql.char_indices().peekable();
    let mut quote: Option<char> = None;
    let mut comment = false;
    while let Some((_, c)) = chars.next() {
        if comment {
            out.push(c);
            comment = c != '\n';
            continue;
        }
        if let Some(q) = quote {
            out.push(c);
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => {
                quote = Some(c);
                out.push(c);
            }
            '-' if chars.peek().is_some_and(|(_, n)| *n == '-') => {
                comment = true;
                out.push(c);
            }
            '?' => {
                let mut digits = String::new();
                while let Some((_, d)) = chars.peek().filter(|(_, d)| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                let n = match digits.parse::<usize>() {
                    Ok(n) => n,
                    Err(_) => {
                        next += 1;
                        next
                    }
                };
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::postgres;

    #[test]
    fn placeholders_are_numbered_outside_quotes_and_comments() {
        assert_eq!(postgres("SELECT 1"), "SELECT 1");
        assert_eq!(
            postgres("SELECT a FROM t WHERE b = ? AND c = '?' AND \"d?\" = ? -- why?\n AND e = ?"),
            "SELECT a FROM t WHERE b = $1 AND c = '?' AND \"d?\" = $2 -- why?\n AND e = $3"
        );
        assert_eq!(postgres("WHERE x BETWEEN ?2 AND ?5 OR y = ?1"), "WHERE x BETWEEN $2 AND $5 OR y = $1");
        assert_eq!(postgres("SELECT 'it''s ?', ?"), "SELECT 'it''s ?', $1");
    }
}
