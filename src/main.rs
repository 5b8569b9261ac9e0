use std::process::ExitCode;

fn main() -> ExitCode {
    match redqueen::cli::run() {
        Ok(code) => code,
        Err(e) => {
            // redqueen's own errors already say their cause; anything else
            // prints its chain of causes.
            match e.downcast_ref::<redqueen::Error>() {
                Some(own) => redqueen::warn_line!("error: {own}"),
                None => redqueen::warn_line!("error: {e:#}"),
            }
            ExitCode::from(redqueen::error::exit_code_of(&e))
        }
    }
}
