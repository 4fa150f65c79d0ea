//! The benchmarks' command lines: `--name VALUE` and `--flag`, with `-h`/`--help` printing the
//! bench's usage and an unknown argument, or one missing its value, an error rather than
//! silently ignored (a mistyped `--calls` would otherwise run the whole default bench).

/// The value after `name`, if it is given.
pub fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Whether `name` is given.
pub fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

/// What is wrong with `args` (the arguments after the program's name), if anything: `Ok(true)`
/// when help was asked for.
pub fn check(args: &[String], with_value: &[&str], flags: &[&str]) -> Result<bool, String> {
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "-h" || a == "--help" {
            return Ok(true);
        } else if flags.contains(&a) {
            i += 1;
        } else if with_value.contains(&a) {
            if i + 1 >= args.len() {
                return Err(format!("{a} needs a value"));
            }
            i += 2;
        } else {
            return Err(format!("unknown argument {a:?}"));
        }
    }
    Ok(false)
}

/// Checks this process's arguments: on `-h`/`--help` prints `usage` and exits 0; on an
/// unknown argument or one missing its value prints why and `usage` and exits 2.
pub fn check_or_exit(usage: &str, with_value: &[&str], flags: &[&str]) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match check(&args, with_value, flags) {
        Ok(false) => {}
        Ok(true) => {
            println!("{usage}");
            std::process::exit(0);
        }
        Err(why) => {
            let me = std::env::args().next().unwrap_or_default();
            let me = me.rsplit('/').next().unwrap_or("bench");
            eprintln!("{me}: {why}\n\n{usage}");
            std::process::exit(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn values_flags_help_and_mistakes() {
        let (vals, flags) = (&["--calls", "--stage"][..], &["--inband"][..]);
        assert_eq!(check(&v(&[]), vals, flags), Ok(false));
        assert_eq!(
            check(
                &v(&["--calls", "5", "--inband", "--stage", "full"]),
                vals,
                flags
            ),
            Ok(false)
        );
        assert_eq!(
            check(&v(&["--calls", "5", "--help"]), vals, flags),
            Ok(true)
        );
        assert_eq!(check(&v(&["-h"]), vals, flags), Ok(true));
        assert_eq!(
            check(&v(&["--call", "5"]), vals, flags),
            Err("unknown argument \"--call\"".into())
        );
        assert_eq!(
            check(&v(&["--inband", "--calls"]), vals, flags),
            Err("--calls needs a value".into())
        );
        // A value is taken as it is, even one that looks like a flag.
        assert_eq!(check(&v(&["--stage", "--inband"]), vals, flags), Ok(false));
    }
}
