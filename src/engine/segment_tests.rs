use proptest::prelude::*;

use super::*;

fn stripes(seq: &Sequence) -> Vec<Stripe> {
    (0..seq.segments().len()).map(|i| Stripe::new(seq, i).expect("a stripe")).collect()
}

/// A sequence of up to `n` uneven segments with boundaries on a grid of `grid` steps.
fn uneven(cuts: &[u64], grid: u64) -> Sequence {
    let mut c: Vec<u64> = cuts.iter().map(|x| x % grid).filter(|&x| x > 0).collect();
    c.sort_unstable();
    c.dedup();
    let text: Vec<String> = c.iter().map(|x| format!("{x}/{grid}")).collect();
    Sequence::parse(&if text.is_empty() { "1".to_string() } else { text.join(",") }).expect("a sequence")
}

#[test]
fn fractions_parse_as_k6_writes_them() {
    assert_eq!(Frac::parse("1/4"), Frac::new(1, 4));
    assert_eq!(Frac::parse("0.25"), Frac::new(1, 4));
    assert_eq!(Frac::parse("25%"), Frac::new(1, 4));
    assert_eq!(Frac::parse("1"), Some(Frac::ONE));
    assert_eq!(Frac::parse(".5"), Frac::new(1, 2));
    for bad in ["", "5/4", "-1", "1/0", "x", "0.1234567", "2"] {
        assert_eq!(Frac::parse(bad), None, "{bad}");
    }
    assert_eq!(Segment::parse("1/4:1/2").map(|s| s.to_string()), Ok("1/4:1/2".into()));
    assert_eq!(Segment::parse("0.5").map(|s| s.to_string()), Ok("0:1/2".into()));
    assert!(Segment::parse("1/2:1/4").unwrap_err().0.contains("below its end"));
    assert!(Segment::parse("a:1").unwrap_err().0.contains("`a`"));
}

#[test]
fn sequences_cover_zero_to_one() {
    assert_eq!(Sequence::parse("1/4,1/2").map(|s| s.to_string()), Ok("0,1/4,1/2,1".into()));
    assert!(Sequence::parse("0,1/2,1/4,1").is_err());
    let seg = Segment::parse("1/4:1/2").unwrap();
    let around = Sequence::around(seg);
    assert_eq!(around.to_string(), "0,1/4,1/2,1");
    assert_eq!(around.position(&seg), Some(1));
    assert_eq!(Sequence::even(4).unwrap().to_string(), "0,1/4,1/2,3/4,1");
    assert!(Sequence::even(0).is_err());
}

#[test]
fn even_stripes_deal_round_robin() {
    let seq = Sequence::even(4).unwrap();
    let s = stripes(&seq);
    assert_eq!((0..8).filter(|&i| s[1].contains(i)).collect::<Vec<_>>(), [1, 5]);
    assert_eq!(s[1].nth(1), 5);
    assert_eq!(s[1].scale(10), 3, "indices 1, 5, 9");
    assert_eq!(Stripe::whole().scale(7), 7);
}

#[test]
fn a_too_fine_sequence_is_refused() {
    let seq = Sequence::parse("1/999983,1/999979").unwrap();
    assert!(Stripe::new(&seq, 0).unwrap_err().0.contains("simpler fractions"));
}

#[test]
fn k6_rounded_scale_telescopes() {
    let seq = Sequence::parse("0,1/3,2/3,1").unwrap();
    for v in 0..50 {
        assert_eq!(seq.segments().iter().map(|s| s.scale_rounded(v)).sum::<u64>(), v);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn shares_sum_to_the_whole(n in 1u64..64, total in 0u64..1_000_000) {
        let s = stripes(&Sequence::even(n).unwrap());
        prop_assert_eq!(s.iter().map(|x| x.scale(total)).sum::<u64>(), total);
    }

    #[test]
    fn uneven_shares_sum_to_the_whole(cuts in proptest::collection::vec(0u64..1000, 0..12), grid in 2u64..200, total in 0u64..1_000_000) {
        let seq = uneven(&cuts, grid);
        let s = stripes(&seq);
        prop_assert_eq!(s.iter().map(|x| x.scale(total)).sum::<u64>(), total);
        for (x, seg) in s.iter().zip(seq.segments()) {
            prop_assert_eq!(seq.segments().iter().map(|s| s.scale_rounded(total)).sum::<u64>(), total);
            // Either way of scaling stays within one item of the exact share.
            let exact = total as f64 * (len(seg).0 as f64 / len(seg).1 as f64);
            prop_assert!((x.scale(total) as f64 - exact).abs() < 1.0 + 1e-9);
        }
    }

    #[test]
    fn stripes_partition_and_every_prefix_is_proportional(cuts in proptest::collection::vec(0u64..1000, 0..10), grid in 2u64..120) {
        let seq = uneven(&cuts, grid);
        let s = stripes(&seq);
        let lens: Vec<f64> = seq.segments().iter().map(|seg| { let (n, d) = len(seg); n as f64 / d as f64 }).collect();
        let mut counts = vec![0u64; s.len()];
        for i in 0..(3 * grid + 7) {
            let owners: Vec<usize> = (0..s.len()).filter(|&k| s[k].contains(i)).collect();
            prop_assert_eq!(owners.len(), 1, "index {} has owners {:?}", i, owners);
            let k = owners[0];
            prop_assert_eq!(s[k].nth(counts[k]), i);
            counts[k] += 1;
            for (k, x) in s.iter().enumerate() {
                prop_assert_eq!(x.scale(i + 1), counts[k]);
                prop_assert!((counts[k] as f64 - (i + 1) as f64 * lens[k]).abs() < 1.0 + 1e-9,
                    "segment {} has {} of the first {}", k, counts[k], i + 1);
            }
        }
    }
}
