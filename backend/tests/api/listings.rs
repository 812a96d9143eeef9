//! Listings at catalogue scale: answered by the database from its indexes on both engines,
//! with counts it keeps exact under concurrent writers (`shared/spec/api.md`, *Listings*).

use bookstore::domain::ListQuery;
use reqwest::StatusCode;

use crate::helpers::{NewRow, TestApp};

/// A catalogue shaped like a real one, big enough that a planner would scan and sort if it had
/// no index to read instead: a fifth Fiction, 2.5% Rare, a quarter by one prolific author,
/// a hundred years, and words that come back in many titles.
fn big_catalogue(books: usize) -> Vec<NewRow> {
    const WORDS: [&str; 12] = [
        "river", "garden", "empire", "shadow", "mountain", "letter", "island", "forest", "city", "storm",
        "winter", "dragon",
    ];
    const GENRES: [&str; 5] = ["History", "Poetry", "Science", "Travel", "Drama"];
    (1..=books)
        .map(|i| NewRow {
            title: format!("The {} {} {i}", WORDS[i % 12], WORDS[(i / 12) % 12]),
            author: if i % 4 == 0 {
                "Prolific".to_owned()
            } else {
                format!("Author {}", i % 2000)
            },
            year: 1900 + (i * 7919 % 120) as i32,
            genre: Some(if i % 40 == 1 {
                "Rare".to_owned()
            } else if i % 5 == 0 {
                "Fiction".to_owned()
            } else {
                GENRES[i % 5].to_owned()
            }),
        })
        .collect()
}

contract_test! {
    #[tokio::test]
    async fn print_plans(engine) {
        let app = TestApp::spawn(engine).await;
        app.insert_directly(&big_catalogue(20_000)).await;
        for query in ["genre=fiction&sort=title&offset=100", "year_from=1950&year_to=1960&sort=title",
            "year_from=1900&year_to=2000&sort=title", "q=dragon&sort=year", "q=dr&sort=-title", "author=prolific&genre=fiction&sort=-created_at",
            "q=river%20garden&sort=title"] {
            let parsed = ListQuery::from_pairs(form_urlencoded::parse(query.as_bytes())).unwrap();
            let plans = app.store.listing_plans(&parsed).await.unwrap();
            println!("== {query}");
            for plan in plans { println!("{}\n--", plan.join("\n")); }
            let response = app.get(&format!("/books?{query}")).await;
            assert_eq!(response.status(), StatusCode::OK);
            println!("total {:?} {:?}", response.headers().get("x-total-count"), response.headers().get("x-total-count-relation"));
        }
    }
}
