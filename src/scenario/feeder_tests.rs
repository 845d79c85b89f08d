use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use rand::SeedableRng;

use super::*;

fn write(dir: &Path, name: &str, content: &str) {
    std::fs::write(dir.join(name), content).unwrap();
}

fn spec(toml_text: &str) -> FeederSpec {
    toml::from_str(toml_text).unwrap()
}

fn file_spec(name: &str, file: &str, order: Option<Order>) -> FeederSpec {
    FeederSpec { name: name.to_string(), file: Some(file.to_string()), order, synthetic: None }
}

fn synth_spec(mean: u32, stddev: Option<f64>, min: Option<u32>, max: Option<u32>, salt: Option<bool>) -> FeederSpec {
    FeederSpec {
        name: "synth".to_string(),
        file: None,
        order: None,
        synthetic: Some(SyntheticSpec {
            mean_tokens: mean,
            stddev_tokens: stddev,
            min_tokens: min,
            max_tokens: max,
            salt,
        }),
    }
}

fn rng(seed: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed)
}

fn get(row: &Value, key: &str) -> String {
    row.get_attr(key).unwrap().as_str().unwrap().to_string()
}

fn load_err(spec: &FeederSpec, dir: &Path) -> String {
    let err = Feeder::load(spec, dir).unwrap_err().to_string();
    assert!(!err.contains('\n'), "error must be one line: {err}");
    err
}

const PROMPTS_CSV: &str = "\u{feff}id,question,lang\r\n\
    1,\"Hello, world?\",en\r\n\
    2,\"Größe \"\"quoted\"\" — ok\",de\r\n\
    3,\"line one\nline two\",en\r\n";

#[test]
fn toml_syntax_parses_into_specs() {
    let s = spec("name = \"prompts\"\nfile = \"data/prompts.csv\"\norder = \"per_user\"");
    assert_eq!(s.order, Some(Order::PerUser));
    let s = spec(
        "name = \"synth\"\nsynthetic = { mean_tokens = 200, stddev_tokens = 50, min_tokens = 20, \
         max_tokens = 800, salt = true }",
    );
    let syn = s.synthetic.unwrap();
    assert_eq!((syn.mean_tokens, syn.min_tokens, syn.max_tokens, syn.salt), (200, Some(20), Some(800), Some(true)));
    assert!(toml::from_str::<FeederSpec>("name = \"x\"\nfile = \"a.csv\"\nbogus = 1").is_err());
    assert!(toml::from_str::<FeederSpec>("name = \"x\"\nfile = \"a.csv\"\norder = \"shuffled\"").is_err());
}

#[test]
fn csv_loads_quoted_fields_utf8_and_bom() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    write(&dir.path().join("data"), "prompts.csv", PROMPTS_CSV);
    let feeder = Feeder::load(&file_spec("prompts", "data/prompts.csv", None), dir.path()).unwrap();
    assert_eq!(feeder.name(), "prompts");
    assert_eq!(feeder.fields(), ["id", "question", "lang"]);
    assert_eq!(feeder.len(), 3);
    assert!(!feeder.is_empty());
    let mut r = rng(1);
    let rows: Vec<Value> = (0..3).map(|_| feeder.pick(0, &mut r)).collect();
    assert_eq!(get(&rows[0], "question"), "Hello, world?");
    assert_eq!(get(&rows[1], "question"), "Größe \"quoted\" — ok");
    assert_eq!(get(&rows[2], "question"), "line one\nline two");
    assert_eq!(get(&rows[2], "id"), "3");
}

#[test]
fn jsonl_loads_strings_and_renders_other_values_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let text = "{\"q\": \"héllo, \\\"you\\\"\", \"n\": 42, \"ok\": true}\n\
                \n\
                {\"q\": \"second\", \"meta\": {\"a\": [1, 2]}, \"nothing\": null}\r\n";
    write(dir.path(), "p.jsonl", text);
    let feeder = Feeder::load(&file_spec("p", "p.jsonl", Some(Order::Sequential)), dir.path()).unwrap();
    assert_eq!(feeder.len(), 2);
    assert_eq!(feeder.fields(), ["n", "ok", "q", "meta", "nothing"]);
    let mut r = rng(1);
    let first = feeder.pick(0, &mut r);
    assert_eq!(get(&first, "q"), "héllo, \"you\"");
    assert_eq!(get(&first, "n"), "42");
    assert_eq!(get(&first, "ok"), "true");
    assert_eq!(get(&first, "meta"), "", "keys missing from a line read as empty");
    let second = feeder.pick(0, &mut r);
    assert_eq!(get(&second, "meta"), "{\"a\":[1,2]}");
    assert_eq!(get(&second, "nothing"), "null");
    assert_eq!(get(&second, "n"), "");
}

#[test]
fn sequential_cycles_across_calls_and_users() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "p.csv", "id\na\nb\nc\n");
    let feeder = Feeder::load(&file_spec("p", "p.csv", None), dir.path()).unwrap();
    let mut r = rng(0);
    let ids: Vec<String> = (0..7).map(|u| get(&feeder.pick(u, &mut r), "id")).collect();
    assert_eq!(ids, ["a", "b", "c", "a", "b", "c", "a"]);
}

#[test]
fn a_shard_takes_its_own_sequential_rows() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "p.csv", "id\na\nb\nc\nd\ne\nf\n");
    // Shard 2 of 3 takes the whole run's picks 1, 4, 7, ...; a random feeder is left alone.
    let mut feeder = Feeder::load(&file_spec("p", "p.csv", None), dir.path()).unwrap();
    feeder.take_sequential(Arc::new(|k| 3 * k + 1));
    let mut r = rng(0);
    let ids: Vec<String> = (0..3).map(|u| get(&feeder.pick(u, &mut r), "id")).collect();
    assert_eq!(ids, ["b", "e", "b"]);
    let mut random = Feeder::load(&file_spec("p", "p.csv", Some(Order::Random)), dir.path()).unwrap();
    random.take_sequential(Arc::new(|_| 0));
    let seen: HashSet<String> = (0..50).map(|u| get(&random.pick(u, &mut r), "id")).collect();
    assert!(seen.len() > 1);
}

#[test]
fn sequential_cursor_is_shared_across_threads() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "p.csv", "id\na\nb\nc\nd\n");
    let feeder = Feeder::load(&file_spec("p", "p.csv", Some(Order::Sequential)), dir.path()).unwrap();
    let counts = std::sync::Mutex::new(std::collections::BTreeMap::<String, usize>::new());
    std::thread::scope(|s| {
        for t in 0..4 {
            let (feeder, counts) = (&feeder, &counts);
            s.spawn(move || {
                let mut r = rng(t);
                for _ in 0..100 {
                    let id = get(&feeder.pick(t, &mut r), "id");
                    *counts.lock().unwrap().entry(id).or_default() += 1;
                }
            });
        }
    });
    // 400 picks over 4 rows from one shared cursor: each row exactly 100 times.
    assert!(counts.into_inner().unwrap().values().all(|&n| n == 100));
}

#[test]
fn per_user_is_stable_per_user_id() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "creds.csv", "user,password\nalice,a1\nbob,b2\ncarol,c3\n");
    let feeder = Feeder::load(&file_spec("creds", "creds.csv", Some(Order::PerUser)), dir.path()).unwrap();
    let mut r = rng(9);
    for _ in 0..3 {
        assert_eq!(get(&feeder.pick(0, &mut r), "user"), "alice");
        assert_eq!(get(&feeder.pick(1, &mut r), "user"), "bob");
        assert_eq!(get(&feeder.pick(5, &mut r), "user"), "carol");
        assert_eq!(get(&feeder.pick(u64::MAX, &mut r), "user"), "alice"); // u64::MAX % 3 == 0
    }
}

#[test]
fn random_is_deterministic_per_seed_and_covers_rows() {
    let dir = tempfile::tempdir().unwrap();
    let csv: String =
        std::iter::once("id".to_string()).chain((0..10).map(|i| i.to_string())).collect::<Vec<_>>().join("\n");
    write(dir.path(), "p.csv", &csv);
    let feeder = Feeder::load(&file_spec("p", "p.csv", Some(Order::Random)), dir.path()).unwrap();
    let draw = |seed| -> Vec<String> {
        let mut r = rng(seed);
        (0..200).map(|_| get(&feeder.pick(0, &mut r), "id")).collect()
    };
    let a = draw(42);
    assert_eq!(a, draw(42));
    assert_ne!(a, draw(43));
    assert_eq!(a.iter().collect::<BTreeSet<_>>().len(), 10);
}

#[test]
fn synthetic_length_distribution() {
    let feeder = Feeder::load(&synth_spec(200, Some(50.0), Some(20), Some(800), None), Path::new(".")).unwrap();
    assert_eq!(feeder.fields(), ["prompt", "tokens"]);
    assert_eq!(feeder.len(), 0);
    let mut r = rng(7);
    let mut total = 0u64;
    let mut markers = HashSet::new();
    for _ in 0..2000 {
        let row = feeder.pick(0, &mut r);
        let n = row.get_attr("tokens").unwrap().as_usize().unwrap();
        assert!((20..=800).contains(&n));
        let prompt = get(&row, "prompt");
        let (marker, words) = prompt.split_once("] ").unwrap();
        assert!(marker.starts_with("[run-load-test ") && marker.len() == "[run-load-test ".len() + 12);
        assert_eq!(words.split(' ').count(), n);
        assert!(words.split(' ').all(|w| VOCABULARY.contains(&w)));
        assert!(markers.insert(marker.to_string()), "salt marker repeated: {marker}");
        total += n as u64;
    }
    let mean = total as f64 / 2000.0;
    assert!((180.0..=220.0).contains(&mean), "mean {mean}");
}

#[test]
fn synthetic_clamps_to_bounds() {
    let feeder = Feeder::load(&synth_spec(10, Some(1000.0), Some(5), Some(15), Some(false)), Path::new(".")).unwrap();
    let mut r = rng(3);
    let lengths: BTreeSet<usize> =
        (0..500).map(|_| feeder.pick(0, &mut r).get_attr("tokens").unwrap().as_usize().unwrap()).collect();
    assert!(lengths.contains(&5) && lengths.contains(&15));
    assert!(lengths.iter().all(|n| (5..=15).contains(n)));
}

#[test]
fn synthetic_same_seed_same_text() {
    let feeder = Feeder::load(&synth_spec(50, Some(10.0), None, None, None), Path::new(".")).unwrap();
    let a = feeder.pick(0, &mut rng(11));
    assert_eq!(get(&a, "prompt"), get(&feeder.pick(0, &mut rng(11)), "prompt"));
    assert_ne!(get(&a, "prompt"), get(&feeder.pick(0, &mut rng(12)), "prompt"));
    // Another load keeps length and words but changes the marker, so a rerun cannot hit a warm cache.
    let other = Feeder::load(&synth_spec(50, Some(10.0), None, None, None), Path::new(".")).unwrap();
    let b = other.pick(0, &mut rng(11));
    let (ma, wa) = get(&a, "prompt").split_once("] ").map(|(m, w)| (m.to_string(), w.to_string())).unwrap();
    let (mb, wb) = get(&b, "prompt").split_once("] ").map(|(m, w)| (m.to_string(), w.to_string())).unwrap();
    assert_eq!(wa, wb);
    assert_ne!(ma, mb);
    // Unsalted prompts are fully reproducible across loads.
    let plain = |f: &Feeder| get(&f.pick(0, &mut rng(5)), "prompt");
    let p1 = Feeder::load(&synth_spec(30, None, None, None, Some(false)), Path::new(".")).unwrap();
    let p2 = Feeder::load(&synth_spec(30, None, None, None, Some(false)), Path::new(".")).unwrap();
    assert_eq!(plain(&p1), plain(&p2));
    assert_eq!(plain(&p1).split(' ').count(), 30, "stddev defaults to 0");
    assert!(!plain(&p1).starts_with('['));
}

#[test]
fn template_renders_a_picked_row() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "prompts.csv", PROMPTS_CSV);
    let feeder = Feeder::load(&file_spec("prompts", "prompts.csv", None), dir.path()).unwrap();
    let row = feeder.pick(0, &mut rng(0));
    let mut ctx = std::collections::BTreeMap::new();
    ctx.insert(feeder.name().to_string(), row);
    let env = minijinja::Environment::new();
    let out = env.render_str("Q{{ prompts.id }}: {{ prompts.question }}", ctx).unwrap();
    assert_eq!(out, "Q1: Hello, world?");
}

#[test]
fn file_errors_name_the_feeder_line_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let err = load_err(&file_spec("prompts", "data/missing.csv", None), d);
    assert!(err.starts_with("feeder `prompts`: data/missing.csv: cannot read it"), "{err}");
    assert!(err.contains("relative to the scenario file"), "{err}");

    write(d, "ragged.csv", "a,b\n1,2\n\"x\ny\",2\n3,4\n5,6,7\n");
    let err = load_err(&file_spec("prompts", "ragged.csv", None), d);
    assert!(err.starts_with("feeder `prompts`: ragged.csv:6: row has 3 fields, the header has 2"), "{err}");

    write(d, "bad.jsonl", "{\"a\": 1}\n\n{\"a\": 2,}\n");
    let err = load_err(&file_spec("p", "bad.jsonl", None), d);
    assert!(err.starts_with("feeder `p`: bad.jsonl:3: invalid JSON at column"), "{err}");

    write(d, "list.jsonl", "{\"a\": 1}\n[1, 2]\n");
    assert!(load_err(&file_spec("p", "list.jsonl", None), d).starts_with("feeder `p`: list.jsonl:2: line is not"));

    for (file, content) in [("empty.csv", ""), ("empty.jsonl", "\n  \n"), ("header.csv", "a,b\n")] {
        write(d, file, content);
        let err = load_err(&file_spec("p", file, None), d);
        assert!(err.starts_with(&format!("feeder `p`: {file}: ")), "{err}");
        assert!(err.contains("empty") || err.contains("no data rows"), "{err}");
    }

    write(d, "dup.csv", "a,b,a\n1,2,3\n");
    assert!(load_err(&file_spec("p", "dup.csv", None), d).contains("dup.csv:1: column `a` appears twice"));
    write(d, "blank.csv", "a,\n1,2\n");
    assert!(load_err(&file_spec("p", "blank.csv", None), d).contains("blank.csv:1: header column 2 has no name"));
    write(d, "p.txt", "a\n1\n");
    assert!(load_err(&file_spec("p", "p.txt", None), d).contains("unknown file type"));
    std::fs::write(d.join("bin.csv"), b"a\nok\n\xff\xfe\n").unwrap();
    assert!(load_err(&file_spec("p", "bin.csv", None), d).contains("bin.csv:3: not valid UTF-8"));
}

#[test]
fn spec_errors() {
    let d = Path::new(".");
    let mut both = synth_spec(10, None, None, None, None);
    both.file = Some("p.csv".to_string());
    assert!(load_err(&both, d).contains("not both"));
    let neither = FeederSpec { name: "x".to_string(), file: None, order: None, synthetic: None };
    assert!(load_err(&neither, d).starts_with("feeder `x`: set `file"));
    let mut ordered = synth_spec(10, None, None, None, None);
    ordered.order = Some(Order::Random);
    assert!(load_err(&ordered, d).contains("`order` applies only to file feeders"));

    for bad in ["", "9lives", "my-feeder", "two words", "a.b", "bad\nname", "user_id", "uuid", "scenario", "none"] {
        let err = load_err(&file_spec(bad, "p.csv", None), d);
        assert!(err.starts_with("feeder `"), "{err}");
        assert!(err.contains("identifier") || err.contains("built-in") || err.contains("keyword"), "{err}");
    }
    for good in ["prompts", "_x", "Creds2"] {
        let err = load_err(&file_spec(good, "missing.csv", None), d);
        assert!(err.contains("cannot read"), "{good}: {err}");
    }

    let cases = [
        (synth_spec(0, None, Some(0), None, None), "mean_tokens` must be between 1 and"),
        (synth_spec(10, Some(-1.0), None, None, None), "stddev_tokens"),
        (synth_spec(10, Some(f64::NAN), None, None, None), "stddev_tokens"),
        (synth_spec(10, None, Some(20), None, None), "min_tokens <= mean_tokens <= max_tokens"),
        (synth_spec(10, None, None, Some(5), None), "min_tokens <= mean_tokens <= max_tokens"),
        (synth_spec(10, None, None, Some(u32::MAX), None), "max_tokens` must be at most"),
        (synth_spec(u32::MAX, None, None, None, None), "mean_tokens` must be between 1 and"),
    ];
    for (spec, expected) in cases {
        let err = load_err(&spec, d);
        assert!(err.starts_with("feeder `synth`: ") && err.contains(expected), "{err}");
    }
}

#[test]
fn vocabulary_has_no_duplicates() {
    assert_eq!(VOCABULARY.iter().collect::<HashSet<_>>().len(), VOCABULARY.len());
}

#[test]
fn arbitrary_bytes_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = rng(99);
    let alphabet = b"a,\"\n\r{}[]:1 \xff\xef\xbb\xbf\\";
    for i in 0..300 {
        let len = r.random_range(0..40);
        let bytes: Vec<u8> = (0..len).map(|_| alphabet[r.random_range(0..alphabet.len())]).collect();
        for ext in ["csv", "jsonl"] {
            let name = format!("f{i}.{ext}");
            std::fs::write(dir.path().join(&name), &bytes).unwrap();
            for order in [Order::Sequential, Order::Random, Order::PerUser] {
                match Feeder::load(&file_spec("f", &name, Some(order)), dir.path()) {
                    Ok(feeder) => {
                        assert!(!feeder.is_empty());
                        for user in 0..3 {
                            assert!(feeder.pick(user, &mut r).get_attr(&feeder.fields()[0]).is_ok());
                        }
                    }
                    Err(err) => {
                        assert!(err.to_string().starts_with("feeder `f`: ") && !err.to_string().contains('\n'), "{err}")
                    }
                }
            }
        }
    }
}

#[test]
fn messages_with_braces_read_as_before() {
    let d = Path::new(".");
    let none = FeederSpec { file: None, ..file_spec("p", "x.csv", None) };
    assert_eq!(
        load_err(&none, d),
        "feeder `p`: set `file = \"data.csv\"` (or a .jsonl file) or `synthetic = { mean_tokens = 200 }`"
    );
    assert_eq!(
        load_err(&file_spec("1p", "x.csv", None), d),
        "feeder `1p`: `name` must be an identifier (ASCII letters, digits and _, not starting with a digit), e.g. \
         `prompts`, so templates can write {{ name.field }}"
    );
}
