use std::net::SocketAddr;

use super::{HttpError, upstream::Upstream};

fn addrs(list: &[&str]) -> Vec<SocketAddr> {
    list.iter().map(|a| a.parse().unwrap()).collect()
}

#[test]
fn a_loopback_upstream_is_found_at_its_address_or_its_family_wildcard() {
    let upstream = Upstream::parse("http://127.0.0.1:8000/").unwrap();
    assert_eq!(upstream.authority, "127.0.0.1:8000");
    assert_eq!(upstream.base_path, "");
    assert_eq!(
        upstream.loopback,
        addrs(&["127.0.0.1:8000", "0.0.0.0:8000"])
    );
    assert_eq!(upstream.uri("/mcp?x=1"), "http://127.0.0.1:8000/mcp?x=1");

    let v6 = Upstream::parse("http://[::1]:9000/base/").unwrap();
    assert_eq!(v6.authority, "[::1]:9000");
    assert_eq!(v6.loopback, addrs(&["[::1]:9000", "[::]:9000"]));
    assert_eq!(v6.uri("/mcp"), "http://[::1]:9000/base/mcp");
}

#[test]
fn another_host_has_no_process_to_look_for_and_port_80_is_the_default() {
    let upstream = Upstream::parse("http://192.0.2.1/mcp").unwrap();
    assert_eq!(upstream.authority, "192.0.2.1:80");
    assert!(upstream.loopback.is_empty());
    assert_eq!(upstream.uri("/"), "http://192.0.2.1:80/mcp/");
}

#[test]
fn https_and_odd_urls_are_refused_with_the_reason() {
    assert!(matches!(
        Upstream::parse("https://127.0.0.1:8443/mcp"),
        Err(HttpError::Tls(_))
    ));
    for (url, why) in [
        ("ftp://127.0.0.1/", "scheme `ftp` is not http"),
        (
            "http://user:pw@127.0.0.1/",
            "credentials in the URL are not supported",
        ),
        (
            "http://127.0.0.1/?a=b",
            "the URL may have no query or fragment",
        ),
        ("127.0.0.1:8000", "relative URL without a base"),
    ] {
        match Upstream::parse(url) {
            Err(HttpError::Upstream { why: got, .. }) => assert_eq!(got, why, "{url}"),
            other => panic!("{url}: {other:?}"),
        }
    }
}
