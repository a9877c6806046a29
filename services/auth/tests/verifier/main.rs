//! Verifier tests through the public API: HS256 with a shared secret, and JWKS against a real
//! HTTP server on 127.0.0.1 serving the test keys under `tests/fixtures/`.

mod helpers;
mod hs256;
mod jwks;
