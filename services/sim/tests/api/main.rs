//! `backend::client::HttpBackend` against the simulator on a free port, over real HTTP: every
//! operation of the `Backend` trait, the simulator's rules, orders, faults and its views.

mod faults;
mod helpers;
mod operations;
mod orders;
mod rejections;
mod views;
