use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn flag(shard: &str) -> ShardFlags {
    ShardFlags { shard: Some(shard.into()), ..ShardFlags::default() }
}

fn id(flags: &ShardFlags, e: &[(&str, &str)]) -> (Option<(u64, u64)>, String, ShardSource) {
    let s = resolve(flags, &env(e)).expect("a shard").expect("some shard");
    (s.number, s.segment.to_string(), s.source)
}

#[test]
fn nothing_named_is_the_whole_run() {
    assert_eq!(resolve(&ShardFlags::default(), &env(&[("SLURM_NTASKS", "1"), ("SLURM_PROCID", "0")])), Ok(None));
}

#[test]
fn every_source_gives_the_same_shard() {
    let want = (Some((2, 4)), "1/4:1/2".to_string());
    type Case<'a> = (ShardFlags, Vec<(&'a str, &'a str)>, ShardSource);
    let cases: [Case; 5] = [
        (flag("2/4"), vec![], ShardSource::Flag),
        (ShardFlags::default(), vec![("RLT_SHARD", "2/4")], ShardSource::RltShard),
        (ShardFlags::default(), vec![("JOB_COMPLETION_INDEX", "1"), ("RLT_SHARD_COUNT", "4")], ShardSource::Kubernetes),
        (ShardFlags::default(), vec![("SLURM_PROCID", "1"), ("SLURM_NTASKS", "4")], ShardSource::Slurm),
        (
            ShardFlags::default(),
            vec![("SLURM_ARRAY_TASK_ID", "6"), ("SLURM_ARRAY_TASK_MIN", "5"), ("SLURM_ARRAY_TASK_COUNT", "4")],
            ShardSource::SlurmArray,
        ),
    ];
    for (flags, e, source) in cases {
        let (n, seg, src) = id(&flags, &e);
        assert_eq!(((n, seg), src), (want.clone(), source), "{e:?}");
    }
    let k8s_flag = ShardFlags { shard_count: Some(4), ..ShardFlags::default() };
    assert_eq!(id(&k8s_flag, &[("JOB_COMPLETION_INDEX", "1")]).0, Some((2, 4)));
}

#[test]
fn precedence_is_flag_rlt_shard_kubernetes_slurm() {
    let all = [
        ("RLT_SHARD", "3/4"),
        ("JOB_COMPLETION_INDEX", "0"),
        ("RLT_SHARD_COUNT", "2"),
        ("SLURM_PROCID", "4"),
        ("SLURM_NTASKS", "8"),
    ];
    assert_eq!(id(&flag("1/3"), &all).2, ShardSource::Flag);
    assert_eq!(id(&ShardFlags::default(), &all).2, ShardSource::RltShard);
    assert_eq!(id(&ShardFlags::default(), &all[1..]).2, ShardSource::Kubernetes);
    assert_eq!(id(&ShardFlags::default(), &all[3..]).0, Some((5, 8)));
}

#[test]
fn segments_and_sequences() {
    let seg = |s: &str, q: Option<&str>| ShardFlags {
        segment: Some(s.into()),
        segment_sequence: q.map(Into::into),
        ..ShardFlags::default()
    };
    let s = resolve(&seg("1/4:1/2", None), &env(&[])).unwrap().unwrap();
    assert_eq!((s.number, s.sequence.to_string()), (None, "0,1/4,1/2,1".to_string()));
    assert_eq!(s.stripe.share(), (1, 4));
    let s = resolve(&seg("0:0.25", Some("0,1/4,1")), &env(&[])).unwrap().unwrap();
    assert_eq!(s.segment.to_string(), "0:1/4");
    let uneven = ShardFlags { segment_sequence: Some("0,1/2,3/4,1".into()), ..flag("1/3") };
    assert_eq!(resolve(&uneven, &env(&[])).unwrap().unwrap().segment.to_string(), "0:1/2");
}

#[test]
fn bad_or_conflicting_values_name_the_fix() {
    let err = |f: &ShardFlags, e: &[(&str, &str)]| resolve(f, &env(e)).unwrap_err().0;
    let none = ShardFlags::default();
    assert_eq!(
        err(&none, &[("JOB_COMPLETION_INDEX", "3")]),
        "JOB_COMPLETION_INDEX=3 but no shard count: add --shard-count N or set RLT_SHARD_COUNT"
    );
    assert!(err(&flag("0/4"), &[]).contains("--shard 0/4"));
    assert!(err(&flag("5/4"), &[]).contains("I from 1 to N"));
    assert!(err(&none, &[("RLT_SHARD", "two")]).starts_with("RLT_SHARD=two"));
    assert!(err(&none, &[("JOB_COMPLETION_INDEX", "4"), ("RLT_SHARD_COUNT", "4")]).contains("not below"));
    assert!(err(&none, &[("SLURM_NTASKS", "x")]).starts_with("SLURM_NTASKS=x"));
    assert!(err(&none, &[("SLURM_ARRAY_TASK_ID", "2")]).contains("SLURM_ARRAY_TASK_COUNT"));
    let both = ShardFlags { segment: Some("0:1/2".into()), ..flag("1/2") };
    assert!(err(&both, &[]).contains("keep one"));
    let count = ShardFlags { shard_count: Some(3), ..flag("1/4") };
    assert!(err(&count, &[]).contains("agree"));
    let stray = ShardFlags { shard_count: Some(3), ..ShardFlags::default() };
    assert!(err(&stray, &[]).contains("--shard-count"));
    let seq = ShardFlags { segment_sequence: Some("0,1/2,1".into()), ..flag("1/4") };
    assert!(err(&seq, &[]).contains("one segment per shard"));
    let outside =
        ShardFlags { segment: Some("0:1/3".into()), segment_sequence: Some("0,1/2,1".into()), ..ShardFlags::default() };
    assert!(err(&outside, &[]).contains("is not one of"));
}

#[test]
fn start_at_is_absolute_or_relative() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    assert_eq!(parse_start_at("+30s", now), Ok(now + Duration::from_secs(30)));
    assert_eq!(parse_start_at("1970-01-01T00:00:10Z", now), Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(10)));
    assert!(parse_start_at("tomorrow", now).unwrap_err().0.contains("RFC 3339"));
    assert!(parse_start_at("+soon", now).unwrap_err().0.contains("+30s"));
}
