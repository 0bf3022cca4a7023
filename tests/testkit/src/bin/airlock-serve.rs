//! `airlock-serve DIR [PORT]`: serve the files in DIR on 127.0.0.1 (with Range support) until
//! killed, for the demo and for trying installs over HTTP. Prints the base URL on stdout.

use std::io::Write;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), port) = (args.next(), args.next()) else {
        eprintln!("usage: airlock-serve DIR [PORT]");
        std::process::exit(2);
    };
    let port: u16 = match port.as_deref().map(str::parse).transpose() {
        Ok(p) => p.unwrap_or(0),
        Err(_) => {
            eprintln!("airlock-serve: PORT must be a number from 0 to 65535");
            std::process::exit(2);
        }
    };
    let server = match airlock_testkit::FaultServer::bind(("127.0.0.1", port)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("airlock-serve: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    };
    server.serve_dir("/", &dir);
    println!("{}", server.url("/"));
    let _ = std::io::stdout().flush();
    loop {
        std::thread::park();
    }
}
