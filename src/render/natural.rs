//! Owns the natural order of table names: runs of digits compare as numbers, so `t2` comes
//! before `t10`, as a reader counting tables expects.

use std::cmp::Ordering;

/// `a` against `b` in natural order. The order is total: names equal as numbers but spelled
/// differently (`t01`, `t1`) still compare by their spelling.
#[must_use]
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (Runs { rest: a }, Runs { rest: b });
    loop {
        match (x.next(), y.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(p), Some(q)) => match compare_runs(p, q) {
                Ordering::Equal => {}
                other => return other,
            },
        }
    }
}

/// A name cut into alternating runs of ASCII digits and of anything else.
struct Runs<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Runs<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let first = self.rest.chars().next()?;
        let digits = first.is_ascii_digit();
        let end = self
            .rest
            .find(|c: char| c.is_ascii_digit() != digits)
            .unwrap_or(self.rest.len());
        let (run, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(run)
    }
}

/// Numbers before text (as in plain byte order); numbers by value, then by spelling.
fn compare_runs(p: &str, q: &str) -> Ordering {
    let is_number = |s: &str| s.starts_with(|c: char| c.is_ascii_digit());
    match (is_number(p), is_number(q)) {
        (true, true) => {
            let (pv, qv) = (p.trim_start_matches('0'), q.trim_start_matches('0'));
            (pv.len(), pv, p).cmp(&(qv.len(), qv, q))
        }
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => p.cmp(q),
    }
}

#[cfg(test)]
mod tests {
    use super::natural_cmp;

    #[test]
    fn numbers_in_names_sort_by_value() {
        let mut names = vec![
            "t10", "t2", "t1", "orders", "t01", "t100", "a2b10", "a2b9", "t", "t_1", "10", "9",
        ];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            ["9", "10", "a2b9", "a2b10", "orders", "t", "t01", "t1", "t2", "t10", "t100", "t_1"]
        );
    }

    #[test]
    fn only_identical_names_are_equal() {
        assert_eq!(natural_cmp("t01", "t01"), std::cmp::Ordering::Equal);
        assert_ne!(natural_cmp("t01", "t1"), std::cmp::Ordering::Equal);
        assert_ne!(natural_cmp("", "0"), std::cmp::Ordering::Equal);
    }
}
