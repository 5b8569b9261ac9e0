use std::process::ExitCode;

fn main() -> ExitCode {
    match redqueen::cli::run() {
        Ok(code) => code,
        Err(e) => {
            // redqueen's own errors already say their cause; anything else
            // prints its chain of causes.
            match e.downcast_ref::<redqueen::Error>() {
                Some(own) => eprintln!("error: {own}"),
                None => eprintln!("error: {e:#}"),
            }
            ExitCode::from(redqueen::error::exit_code_of(&e))
        }
    }
}
