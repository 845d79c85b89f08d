//! What must hold before shards are added: one scenario, one histogram setting, one recorder shape, distinct
//! shard numbers of one count, all of them present, started together, and each shard's seconds agreeing with its
//! own result.json. Each problem is one line naming the file and the fix.

use std::time::Duration;

use super::ShardInput;
use crate::result::HdrSettings;

/// The shard number (1-based) and count a shard declares, from its result.json or else its journal header. A
/// bare `--segment` has no number: its place in its segment sequence is its number, and the sequence's length the
/// count (every shard's sequence must then be the same: `mismatch` checks it).
pub fn identity(s: &ShardInput) -> Option<(u64, u64)> {
    let info = s.report.shard.as_ref().or(s.header.shard.as_ref())?;
    if let (Some(i), Some(n)) = (info.index, info.count) {
        return Some((i, n));
    }
    // Both are written in one canonical form (`1/4:1/2` and `0,1/4,1/2,1`), so the text is compared.
    let bounds: Vec<&str> = info.sequence.split(',').collect();
    let (from, to) = info.segment.split_once(':')?;
    let place = bounds.windows(2).position(|w| w[0] == from && w[1] == to)?;
    Some((place as u64 + 1, bounds.len() as u64 - 1))
}

/// The engine's start of a shard, ms since the epoch: the journal's first second says it.
pub fn start_ms(s: &ShardInput) -> Option<u64> {
    s.counted.start_ms
}

/// A shard that cannot be merged with the first one, and why; `None` when it can.
pub fn mismatch(first: &ShardInput, s: &ShardInput) -> Option<String> {
    let (a, b) = (&first.report.scenario.hash, &s.report.scenario.hash);
    if a != b {
        return Some(format!(
            "{}: scenario hash {b} differs from {}'s {a}: run every shard with the same scenario file",
            s.file, first.file
        ));
    }
    let hdr = |x: &ShardInput| x.report.hdr.or(x.header.hdr).unwrap_or(HdrSettings::CURRENT);
    if hdr(first) != hdr(s) {
        return Some(format!(
            "{}: histogram settings {:?} differ from {}'s {:?}: run every shard with the same run-load-test version",
            s.file,
            hdr(s),
            first.file,
            hdr(first)
        ));
    }
    // Stripes are dealt over the whole sequence: shards that split the run by different sequences overlap or
    // leave gaps, whatever their segments say.
    let sequence = |x: &ShardInput| x.report.shard.as_ref().or(x.header.shard.as_ref()).map(|i| i.sequence.clone());
    if let (Some(a), Some(b)) = (sequence(first), sequence(s)) {
        if a != b {
            return Some(format!(
                "{}: segment sequence {b} differs from {}'s {a}: run every shard with the same \
                 --segment-sequence (or --shard I/N)",
                s.file, first.file
            ));
        }
    }
    fn shape(x: &ShardInput) -> (Vec<(&str, &str)>, &[String]) {
        let steps = x.header.run.steps.iter().map(|l| (l.user.as_str(), l.name.as_str())).collect();
        (steps, &x.header.run.flows)
    }
    if shape(first) != shape(s) {
        return Some(format!(
            "{}: its steps or user classes differ from {}'s: run every shard with the same scenario, tags and vars",
            s.file, first.file
        ));
    }
    None
}

/// A shard whose seconds do not add up to its own result.json (a journal from another run, a torn file).
pub fn disagreement(s: &ShardInput) -> Option<String> {
    let (requests, failures) = (s.counted.requests, s.counted.failures);
    let r = &s.report.totals;
    (requests != r.requests || failures != r.failures).then(|| {
        format!(
            "{}: its seconds hold {requests} requests ({failures} failed) but its result.json {} ({} failed): the \
             directory mixes two runs; run the shard again into an empty --out",
            s.file, r.requests, r.failures
        )
    })
}

/// Duplicate numbers, numbers beyond the count, counts that disagree, and the numbers missing of `expect`.
/// `shards` are (file, number, count). Returns the problems and the missing numbers.
pub fn numbering(shards: &[(String, u64, u64)], expect: u64) -> (Vec<String>, Vec<u64>) {
    let mut problems = Vec::new();
    for (i, (file, n, count)) in shards.iter().enumerate() {
        if *count != expect {
            problems.push(format!(
                "{file}: shard {n}/{count} of a run of {count}, but {expect} are expected: merge the shards of one \
                 run (or give --expect {count})"
            ));
        }
        if let Some((other, ..)) = shards[..i].iter().find(|(_, m, _)| m == n) {
            problems.push(format!(
                "{file}: shard {n} again ({other} is shard {n} too): each shard needs its own --shard I/N"
            ));
        }
    }
    let missing: Vec<u64> = (1..=expect).filter(|n| !shards.iter().any(|(_, m, _)| m == n)).collect();
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|n| format!("{n}/{expect}")).collect();
        problems.push(format!(
            "shard {} missing: pass its directory too, or --allow-partial to merge the rest",
            list.join(", ")
        ));
    }
    (problems, missing)
}

/// Shards whose engine started more than `max` after the earliest one. `starts` are (file, ms since epoch).
pub fn skew(starts: &[(String, u64)], max: Duration) -> Vec<String> {
    let Some(first) = starts.iter().min_by_key(|(_, ms)| *ms) else { return Vec::new() };
    starts
        .iter()
        .filter(|(_, ms)| u128::from(ms - first.1) > max.as_millis())
        .map(|(file, ms)| {
            format!(
                "{file}: started {} ms after {} (more than --max-skew {}): start the shards with one --start-at, or \
                 raise --max-skew",
                ms - first.1,
                first.0,
                humantime::format_duration(max)
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shards(list: &[(u64, u64)]) -> Vec<(String, u64, u64)> {
        list.iter().map(|(n, c)| (format!("s{n}"), *n, *c)).collect()
    }

    #[test]
    fn a_missing_shard_is_named_with_the_fix() {
        let (p, missing) = numbering(&shards(&[(1, 4), (2, 4), (4, 4)]), 4);
        assert_eq!(missing, [3]);
        assert_eq!(p, ["shard 3/4 missing: pass its directory too, or --allow-partial to merge the rest"]);
        let (p, missing) = numbering(&shards(&[(1, 4), (2, 4), (3, 4), (4, 4)]), 4);
        assert!(p.is_empty() && missing.is_empty(), "{p:?}");
    }

    #[test]
    fn a_duplicate_shard_names_both_files() {
        let mut s = shards(&[(1, 2), (2, 2)]);
        s.push(("again".into(), 2, 2));
        let (p, missing) = numbering(&s, 2);
        assert!(missing.is_empty());
        assert_eq!(p, ["again: shard 2 again (s2 is shard 2 too): each shard needs its own --shard I/N"]);
    }

    #[test]
    fn shards_of_another_count_are_refused() {
        let (p, missing) = numbering(&shards(&[(1, 2), (2, 2)]), 4);
        assert_eq!(missing, [3, 4]);
        assert!(p[0].starts_with("s1: shard 1/2 of a run of 2, but 4 are expected"), "{p:?}");
        assert!(p[2].starts_with("shard 3/4, 4/4 missing"), "{p:?}");
    }

    #[test]
    fn skew_beyond_the_bound_names_the_late_shard() {
        let starts = vec![("a".to_string(), 10_000), ("b".to_string(), 10_900), ("c".to_string(), 11_001)];
        let p = skew(&starts, Duration::from_secs(1));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("c: started 1001 ms after a (more than --max-skew 1s)"), "{p:?}");
        assert!(skew(&starts, Duration::from_millis(1001)).is_empty());
        assert!(skew(&[], Duration::ZERO).is_empty());
    }
}
