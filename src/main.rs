use std::process::ExitCode;

fn main() -> ExitCode {
    match redqueen::cli::run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            let code = e.downcast_ref::<redqueen::Error>().map_or(1, |e| e.exit_code());
            ExitCode::from(code)
        }
    }
}
