use super::*;
use crate::attack::AttackConfig;

fn tournament(extra: &str) -> String {
    format!(
        r#"
name = "t"
rounds = 2
[data]
dataset = "synthetic-digits"
train = 500
test = 100
[sizes]
eval = 50
craft = 32
[model]
kind = "mlp"
hidden = [32]
[rules]
linf = 0.3
l2 = 2.0
[[attackers]]
name = "a"
policy = {{ kind = "fixed" }}
repertoire = [{{ family = "pgd", eps = 0.3 }}]
[[defenders]]
name = "d"
strategy = {{ kind = "standard" }}
{extra}
"#
    )
}

fn check_text(text: &str) -> Result<Plan> {
    check(parse(text, "t.toml")?, "t.toml", &Store::Builtin)
}

fn error_of(text: &str) -> String {
    check_text(text).expect_err("should be rejected").to_string()
}

#[test]
fn a_minimal_tournament_checks() {
    let plan = check_text(&tournament("")).unwrap();
    assert_eq!(plan.matches().len(), 1);
    assert_eq!(plan.attackers[0].repertoire[0].label(), "pgd-linf-0.3");
}

#[test]
fn the_default_tournament_checks_and_round_trips() {
    let plan = load_default().unwrap();
    assert!(plan.attackers.len() >= 2);
    assert!(plan.attackers.iter().any(|a| a.policy.kind() == "bandit"));
    let kinds: Vec<&str> = plan.defenders.iter().map(|d| d.strategy.kind()).collect();
    for kind in ["standard", "adversarial", "pgd-at"] {
        assert!(kinds.contains(&kind), "default lacks {kind}");
    }
    // The resolved config reproduces the same plan.
    let again = check_text(&plan.to_toml()).unwrap();
    assert_eq!(again.file, plan.file);
    assert_eq!(again.attackers, plan.attackers);
}

#[test]
fn every_builtin_strategy_file_parses() {
    for (path, text) in builtin::STRATEGIES {
        let result: Result<()> = if path.starts_with("attackers/") {
            parse::<AttackerConfig>(text, path).map(|_| ())
        } else if path.starts_with("defenders/") {
            parse::<DefenderConfig>(text, path).map(|_| ())
        } else if path.starts_with("matrix/") {
            parse(text, path).and_then(|file| super::matrix::check_matrix(file, path).map(|_| ()))
        } else {
            parse::<TournamentFile>(text, path).map(|_| ())
        };
        result.unwrap();
        assert!(
            !builtin::summary_line(text).is_empty(),
            "{path} has no comment line saying what it models"
        );
    }
}

#[test]
fn the_checked_in_files_match_the_built_in_copies() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("strategies");
    for (path, text) in builtin::STRATEGIES {
        assert_eq!(std::fs::read_to_string(root.join(path)).unwrap(), *text);
    }
}

#[test]
fn unknown_keys_are_named_with_their_line() {
    let e = error_of(&tournament("").replace("rounds = 2", "rounds = 2\nrunds = 3"));
    assert!(e.contains("runds") && e.contains("line"), "{e}");
    let e = error_of(&tournament("").replace("eps = 0.3 }", "eps = 0.3, stesp = 3 }"));
    assert!(e.contains("stesp"), "{e}");
}

#[test]
fn bad_values_are_named() {
    let cases = [
        ("rounds = 2", "rounds = 0", "`rounds`"),
        ("eval = 50", "eval = 500", "`sizes.eval`"),
        ("craft = 32", "craft = 5000", "`sizes.craft`"),
        ("craft = 32", "craft = 450", "left after the attacker slice"),
        (
            "craft = 32",
            "craft = 32\nattacker_slice = 0",
            "`sizes.attacker_slice` = 0",
        ),
        ("eps = 0.3 }", "eps = 0.5 }", "linf budget 0.3"),
        ("eps = 0.3 }", "eps = -1.0 }", "`eps`"),
        (
            "dataset = \"synthetic-digits\"",
            "dataset = \"cifar\"",
            "`data.dataset`",
        ),
        ("l2 = 2.0", "", "no l2 budget"),
    ];
    for (from, to, expected) in cases {
        let mut text = tournament("");
        if to.is_empty() {
            text = text.replace(from, "");
            text = text.replace("[[defenders]]", "[[attackers]]\nname = \"b\"\npolicy = { kind = \"fixed\" }\nrepertoire = [{ family = \"pgd\", norm = \"l2\", eps = 1.0 }]\n[[defenders]]");
        } else {
            text = text.replace(from, to);
        }
        let e = error_of(&text);
        assert!(e.contains(expected), "{to}: {e}");
    }
}

#[test]
fn unseen_attacks_may_not_be_in_a_repertoire() {
    let e = error_of(&tournament("[[unseen]]\nfamily = \"pgd\"\neps = 0.3"));
    assert!(e.contains("unseen[0]"), "{e}");
    assert!(check_text(&tournament("[[unseen]]\nfamily = \"pgd\"\nnorm = \"l2\"\neps = 2.0")).is_ok());
}

#[test]
fn duplicate_names_are_rejected() {
    let text = tournament("[[defenders]]\nname = \"d\"\nstrategy = { kind = \"standard\" }");
    assert!(error_of(&text).contains("unique"));
}

#[test]
fn references_must_stay_inside_the_strategies_folder() {
    for bad in [
        "../secret.toml",
        "/etc/passwd.toml",
        "attackers/../../x.toml",
        "attackers/x.txt",
    ] {
        let text = tournament("").replace(
            "[[defenders]]\nname = \"d\"\nstrategy = { kind = \"standard\" }",
            &format!("[[defenders]]\nuse = \"{bad}\""),
        );
        assert!(error_of(&text).contains("relative path"), "{bad}");
    }
}

#[test]
fn references_resolve_and_names_override() {
    let text = tournament("").replace(
        "[[defenders]]\nname = \"d\"\nstrategy = { kind = \"standard\" }",
        "[[defenders]]\nuse = \"defenders/adversarial.toml\"\nname = \"adv2\"",
    );
    let plan = check_text(&text).unwrap();
    assert_eq!(plan.defenders[0].name, "adv2");
    assert_eq!(plan.defenders[0].strategy.kind(), "adversarial");
    assert!(plan.to_toml().contains("kind = \"adversarial\""));
}

#[test]
fn quick_shrinks_sizes() {
    let mut plan = load_default().unwrap();
    quick(&mut plan.file);
    assert!(plan.file.rounds <= 3 && plan.file.sizes.eval <= 100);
}

#[test]
fn an_unseen_attack_renamed_is_still_the_same_attack() {
    let e = error_of(&tournament("[[unseen]]\nfamily = \"pgd\"\neps = 0.3\nname = \"other\""));
    assert!(e.contains("unseen[0]"), "{e}");
}

#[test]
fn a_defenders_training_attack_may_not_be_unseen() {
    let text = tournament("[[unseen]]\nfamily = \"pgd\"\nnorm = \"l2\"\neps = 2.0\nsteps = 7").replace(
        "strategy = { kind = \"standard\" }",
        "strategy = { kind = \"pgd-at\", attack = { norm = \"l2\", eps = 2.0, steps = 7 } }",
    );
    assert!(error_of(&text).contains("unseen[0]"));
}

#[test]
fn pgd_at_needs_a_positive_budget() {
    for eps in ["-0.1", "0.0", "nan"] {
        let text = tournament("").replace(
            "strategy = { kind = \"standard\" }",
            &format!("strategy = {{ kind = \"pgd-at\", attack = {{ eps = {eps} }} }}"),
        );
        let e = error_of(&text);
        assert!(e.contains("`eps`"), "{eps}: {e}");
    }
}

#[test]
fn pretraining_settings_are_checked() {
    for (setting, key) in [("lr = 0.0", "`lr`"), ("lr = 0.1, momentum = 1.5", "`momentum`")] {
        let text = tournament("").replace("[rules]", &format!("[pretrain]\noptimizer = {{ {setting} }}\n[rules]"));
        let e = error_of(&text);
        // Checked as the table is read: the error points at its line.
        assert!(
            e.contains("optimizer = {") && e.contains("line 15") && e.contains(key),
            "{e}"
        );
    }
}

#[test]
fn adversarial_pretraining_reads_its_recipe_and_checks_it() {
    let pretrain = |body: &str| tournament("").replace("[rules]", &format!("[pretrain]\n{body}\n[rules]"));
    let plan = check_text(&pretrain(
        "steps = 300\noptimizer = { kind = \"adam\", lr = 1e-3, schedule = \"cosine\" }\nattack = { family = \"pgd\", eps = 0.3 }\neps_warmup = 100\nearly_stop = { every = 50, images = 100 }",
    ))
    .unwrap();
    let p = &plan.file.pretrain;
    assert_eq!(p.length, crate::model::Length::Steps(300));
    assert_eq!(p.eps_warmup, 100);
    assert_eq!(p.early_stop.as_ref().map(|e| (e.every, e.images)), Some((50, 100)));
    assert!(p.attack.is_some());
    // What a run folder's config.toml holds reads back the same.
    let again: TournamentFile = parse(&plan.to_toml(), "config.toml").unwrap();
    assert_eq!(&again.pretrain, p);

    for (body, needle) in [
        ("epochs = 2\nsteps = 100", "`epochs` or `steps`, not both"),
        ("eps_warmup = 10", "`eps_warmup` applies to adversarial pretraining"),
        (
            "early_stop = { every = 10 }",
            "`early_stop` applies to adversarial pretraining",
        ),
        (
            "attack = { family = \"pgd\", eps = 0.3 }\nearly_stop = { images = 5000 }",
            "`early_stop.images` = 5000 must be at most half the training images (400)",
        ),
        (
            "attack = { family = \"pgd\", eps = 0.3 }\nearly_stop = { drop = 2.0 }",
            "`early_stop.drop`",
        ),
        ("steps = 0", "`steps` must be at least 1"),
        (
            "steps = 50\nattack = { family = \"pgd\", eps = 0.3 }\neps_warmup = 50",
            "`eps_warmup` = 50 must be fewer than the run's 50 steps",
        ),
        (
            "attack = { family = \"spatial\", degrees = 10.0, pixels = 1 }\nearly_stop = { images = 10 }",
            "`early_stop` needs an attack whose budget is one `eps`",
        ),
        (
            "optimizer = { kind = \"adam\", lr = 1e-3, momentum = 0.9 }",
            "`momentum` belongs to `kind = \"sgd\"`",
        ),
    ] {
        let e = error_of(&pretrain(body));
        assert!(e.contains(needle), "{body}: {e}");
    }
}

#[test]
fn errors_in_a_used_strategy_file_name_that_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("attackers")).unwrap();
    std::fs::write(
        dir.path().join("attackers/bad.toml"),
        "name = \"bad\"\npolicy = { kind = \"bandit\", gamma = 0.0 }\nrepertoire = [{ family = \"pgd\", eps = 0.3 }]\n",
    )
    .unwrap();
    let text = tournament("").replace(
        "[[attackers]]\nname = \"a\"\npolicy = { kind = \"fixed\" }",
        "[[attackers]]\nuse = \"attackers/bad.toml\"\n\n[[attackers]]\nname = \"a\"\npolicy = { kind = \"fixed\" }",
    );
    let e = check(
        parse(&text, "t.toml").unwrap(),
        "t.toml",
        &Store::Disk(dir.path().to_path_buf()),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("bad.toml") && e.contains("`gamma`"), "{e}");
}

#[test]
fn query_attacks_must_fit_the_rules_query_budget() {
    let text = tournament("").replace(
        "repertoire = [{ family = \"pgd\", eps = 0.3 }]",
        "repertoire = [{ family = \"square\", eps = 0.3, queries = 5000 }]",
    );
    let e = error_of(&text);
    assert!(e.contains("rules.queries") && e.contains("5000"), "{e}");
    let ok = text.replace("l2 = 2.0", "l2 = 2.0\nqueries = 5000");
    assert!(check_text(&ok).is_ok());
}

#[test]
fn spatial_attacks_need_a_spatial_budget_and_round_trip() {
    let text = tournament("").replace(
        "repertoire = [{ family = \"pgd\", eps = 0.3 }]",
        "repertoire = [{ family = \"spatial\", degrees = 30.0, pixels = 3 }]",
    );
    assert!(error_of(&text).contains("spatial budget"));
    let tight = text.replace("l2 = 2.0", "l2 = 2.0\nspatial = { degrees = 15.0, pixels = 3 }");
    assert!(error_of(&tight).contains("rules.spatial"));
    let ok = text.replace("l2 = 2.0", "l2 = 2.0\nspatial = { degrees = 30.0, pixels = 3 }");
    let plan = check_text(&ok).unwrap();
    assert_eq!(check_text(&plan.to_toml()).unwrap().file, plan.file);
}

#[test]
fn wrapped_attacks_are_held_to_the_rules_too() {
    let rules = Rules {
        linf: Some(0.1),
        l2: None,
        l1: None,
        queries: 1000,
        spatial: None,
    };
    let over = AttackConfig::Bpda(crate::attack::BpdaConfig {
        name: None,
        attack: Box::new(AttackConfig::Pgd(crate::attack::PgdConfig::new(
            crate::attack::Norm::Linf,
            0.3,
        ))),
    });
    assert!(within_rules(&rules, &over)
        .unwrap_err()
        .to_string()
        .contains("rules.linf"));
    let spatial = AttackConfig::Eot(crate::attack::EotConfig {
        name: None,
        samples: 2,
        attack: Box::new(AttackConfig::Spatial(crate::attack::SpatialConfig::new(10.0, 1))),
    });
    assert!(within_rules(&rules, &spatial)
        .unwrap_err()
        .to_string()
        .contains("spatial budget"));
}

#[test]
fn unknown_names_come_with_the_closest_valid_one() {
    let e = error_of(&tournament("").replace("rounds = 2", "runds = 2"));
    assert!(
        e.contains("unknown field `runds`") && e.contains("did you mean `rounds`?"),
        "{e}"
    );
    let e = error_of(&tournament("").replace("kind = \"mlp\"", "kind = \"MLP\""));
    assert!(e.contains("did you mean `mlp`?"), "{e}");
    let e = error_of(&tournament("").replace("\"synthetic-digits\"", "\"mnistt\""));
    assert!(
        e.contains("`data.dataset`") && e.contains("did you mean `mnist`?") && e.contains("fashion-mnist"),
        "{e}"
    );
    let e = error_of(&tournament("").replace(
        "[[defenders]]\nname = \"d\"\nstrategy = { kind = \"standard\" }",
        "[[defenders]]\nuse = \"defenders/pgd_at.toml\"",
    ));
    assert!(e.contains("did you mean `defenders/pgd-at.toml`?"), "{e}");
    // Nothing close: no guess, but the valid names are still listed.
    let e = error_of(&tournament("").replace("\"synthetic-digits\"", "\"imagenet\""));
    assert!(!e.contains("did you mean") && e.contains("synthetic-digits"), "{e}");
}

/// A strategies folder with one defender file, and the tiny tournament
/// using `defenders/{name}` from it.
fn check_on_disk(root: &Path, name: &str) -> Result<Plan> {
    let text = tournament("").replace(
        "[[defenders]]\nname = \"d\"\nstrategy = { kind = \"standard\" }",
        &format!("[[defenders]]\nuse = \"defenders/{name}\""),
    );
    check(parse(&text, "t.toml")?, "t.toml", &Store::Disk(root.to_path_buf()))
}

#[test]
fn links_may_not_lead_out_of_the_strategies_folder() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("strategies");
    std::fs::create_dir_all(root.join("defenders")).unwrap();
    let defender = "name = \"d\"\nstrategy = { kind = \"standard\" }\n";
    std::fs::write(root.join("defenders/standard.toml"), defender).unwrap();
    std::fs::write(dir.path().join("outside.toml"), defender).unwrap();
    std::os::unix::fs::symlink(dir.path().join("outside.toml"), root.join("defenders/evil.toml")).unwrap();
    // A link that stays inside is fine.
    std::os::unix::fs::symlink(root.join("defenders/standard.toml"), root.join("defenders/alias.toml")).unwrap();
    assert!(check_on_disk(&root, "standard.toml").is_ok());
    assert!(check_on_disk(&root, "alias.toml").is_ok());
    let e = check_on_disk(&root, "evil.toml").unwrap_err().to_string();
    assert!(
        e.contains("outside the strategies folder") && e.contains("outside.toml") && e.contains("t.toml"),
        "{e}"
    );
    // A whole subfolder linked from elsewhere leads out too.
    std::fs::create_dir_all(dir.path().join("elsewhere")).unwrap();
    std::fs::write(dir.path().join("elsewhere/x.toml"), defender).unwrap();
    std::os::unix::fs::symlink(dir.path().join("elsewhere"), root.join("defenders/sub")).unwrap();
    let e = check_on_disk(&root, "sub/x.toml").unwrap_err().to_string();
    assert!(e.contains("outside the strategies folder"), "{e}");
    // A missing file: the folder's files are listed, the closest suggested.
    let e = check_on_disk(&root, "standrd.toml").unwrap_err().to_string();
    assert!(
        e.contains("did you mean `defenders/standard.toml`?") && e.contains("defenders/alias.toml"),
        "{e}"
    );
}

#[test]
fn a_tournament_in_the_current_folder_reads_strategies_from_it() {
    // `Store::for_file("t.toml")` is the folder "" (the current one: the
    // crate root when tests run).
    let store = Store::for_file(Path::new("t.toml"));
    let text = tournament("").replace(
        "[[defenders]]\nname = \"d\"\nstrategy = { kind = \"standard\" }",
        "[[defenders]]\nuse = \"strategies/defenders/standard.toml\"",
    );
    let plan = check(parse(&text, "t.toml").unwrap(), "t.toml", &store).unwrap();
    assert_eq!(plan.defenders[0].strategy.kind(), "standard");
}

#[test]
fn an_idx_folder_must_exist_and_hold_images_the_model_can_take() {
    let dir = tempfile::tempdir().unwrap();
    let with_path = |path: &Path| {
        tournament("").replace(
            "dataset = \"synthetic-digits\"",
            &format!("dataset = \"idx\"\npath = {:?}", path.display().to_string()),
        )
    };
    let missing = dir.path().join("nowhere");
    let e = error_of(&with_path(&missing));
    assert!(
        e.contains("`data.path`") && e.contains("nowhere") && e.contains("train-images-idx3-ubyte"),
        "{e}"
    );
    let header = |rows: u32, cols: u32| -> Vec<u8> {
        [crate::data::idx::IMAGES_MAGIC, 1, rows, cols]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .chain(std::iter::repeat_n(0u8, (rows * cols) as usize))
            .collect()
    };
    // Any size fits an MLP; what else is wrong is the loader's to say.
    std::fs::write(dir.path().join("train-images-idx3-ubyte"), header(30, 30)).unwrap();
    assert!(check_text(&with_path(dir.path())).is_ok());
    // The CNN pools twice: sides must be multiples of 4, read from the header.
    let cnn = with_path(dir.path()).replace(
        "kind = \"mlp\"\nhidden = [32]",
        "kind = \"cnn\"\nchannels = [2, 2]\ndense = 8",
    );
    let e = error_of(&cnn);
    assert!(
        e.contains("`model`") && e.contains("multiples of 4") && e.contains("30x30"),
        "{e}"
    );
    std::fs::write(dir.path().join("train-images-idx3-ubyte"), header(32, 32)).unwrap();
    assert!(check_text(&cnn).is_ok());
}
