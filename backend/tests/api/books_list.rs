//! `GET /books`: pagination, filters, sorting, and the headers that go with them.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, error_fields, header, ids};

/// A small catalogue with known properties, created in id order.
async fn catalogue(app: &TestApp) -> Vec<i64> {
    let books = [
        ("Dune", "Frank Herbert", 1965, Some("Science fiction")),
        ("Emma", "Jane Austen", 1815, Some("Romance")),
        ("Persuasion", "Jane Austen", 1817, Some("romance")),
        ("L'Étranger", "Albert Camus", 1942, None),
        ("Children of Dune", "frank herbert", 1976, Some("Science Fiction")),
        ("école des femmes", "Molière", 1662, Some("Comedy")),
        ("100% \"Quoted\" _under_", "Anon", -400, None),
    ];
    let mut ids = Vec::new();
    for (title, author, year, genre) in books {
        let book = app
            .create(json!({"title": title, "author": author, "year": year, "genre": genre}))
            .await;
        ids.push(book["id"].as_i64().unwrap());
    }
    ids
}

async fn list(app: &TestApp, query: &str) -> (Vec<i64>, i64, Option<String>) {
    let response = app.get(&format!("/books{query}")).await;
    assert_eq!(response.status(), StatusCode::OK, "GET /books{query}");
    let total = header(&response, "x-total-count").parse().unwrap();
    let link = response
        .headers()
        .get("link")
        .map(|l| l.to_str().unwrap().to_owned());
    let books: Value = response.json().await.unwrap();
    (ids(&books), total, link)
}

contract_test! {
    #[tokio::test]
    async fn an_empty_catalogue_is_an_empty_array(engine) {
        let app = TestApp::spawn(engine).await;
        let (books, total, link) = list(&app, "").await;
        assert!(books.is_empty());
        assert_eq!(total, 0);
        assert_eq!(link, None);
    }
}

contract_test! {
    #[tokio::test]
    async fn by_default_books_come_in_id_order_with_the_total(engine) {
        let app = TestApp::spawn(engine).await;
        let all = catalogue(&app).await;
        let (books, total, link) = list(&app, "").await;
        assert_eq!(books, all);
        assert_eq!(total, 7);
        assert_eq!(link, None, "a single page has no links");
    }
}

contract_test! {
    #[tokio::test]
    async fn the_default_page_is_100_books(engine) {
        let app = TestApp::spawn(engine).await;
        for i in 0..105 {
            app.create_titled(&format!("Book {i}")).await;
        }
        let (books, total, link) = list(&app, "").await;
        assert_eq!(books.len(), 100);
        assert_eq!(total, 105);
        let next = next_link(&link.unwrap()).unwrap();
        assert!(next.starts_with("?limit=100&cursor="), "{next}");
        let (rest, _, link) = list(&app, &next).await;
        assert_eq!(rest.len(), 5);
        assert!(rest.iter().all(|id| !books.contains(id)));
        assert_eq!(link, None, "the last page has no next");
    }
}

contract_test! {
    #[tokio::test]
    async fn limit_and_offset_page_through_with_links(engine) {
        let app = TestApp::spawn(engine).await;
        let all = catalogue(&app).await;
        let (first, total, link) = list(&app, "?limit=3").await;
        assert_eq!((first.as_slice(), total), (&all[0..3], 7));
        let (next, _, _) = list(&app, &next_link(&link.unwrap()).unwrap()).await;
        assert_eq!(next, &all[3..6], "next is the page after");

        let (middle, _, link) = list(&app, "?limit=3&offset=3").await;
        assert_eq!(middle, &all[3..6]);
        let link = link.unwrap();
        assert!(link.ends_with(", </books?limit=3&offset=0>; rel=\"prev\""), "{link}");
        let (next, _, _) = list(&app, &next_link(&link).unwrap()).await;
        assert_eq!(next, &all[6..]);

        let (last, _, link) = list(&app, "?limit=3&offset=6").await;
        assert_eq!(last, &all[6..]);
        assert_eq!(link.unwrap(), "</books?limit=3&offset=3>; rel=\"prev\"");

        let (beyond, total, _) = list(&app, "?offset=50").await;
        assert!(beyond.is_empty());
        assert_eq!(total, 7);
    }
}

contract_test! {
    #[tokio::test]
    async fn links_keep_the_filters_and_the_sort(engine) {
        let app = TestApp::spawn(engine).await;
        catalogue(&app).await;
        let (_, total, link) = list(&app, "?q=aus&sort=-year&limit=1&year_from=1800").await;
        assert_eq!(total, 2, "Jane Austen twice");
        let next = next_link(&link.unwrap()).unwrap();
        let cursor = next.split('&').find(|p| p.starts_with("cursor=")).unwrap();
        assert_eq!(
            next,
            format!("?limit=1&{cursor}&q=aus&year_from=1800&sort=-year")
        );
    }
}

/// The query of a Link header's `next` page (what follows `/books`), if it has one.
fn next_link(link: &str) -> Option<String> {
    link.split(", ")
        .find(|part| part.ends_with("rel=\"next\""))
        .map(|part| {
            part[1..part.find('>').unwrap()]
                .trim_start_matches("/books")
                .to_owned()
        })
}

/// Follows `next` links from `first` to the end and returns every book seen.
async fn follow(app: &TestApp, first: &str) -> Vec<i64> {
    let (mut seen, _, mut link) = list(app, first).await;
    while let Some(next) = link.as_deref().and_then(next_link) {
        let (page, _, again) = list(app, &next).await;
        assert!(page.len() <= 2, "{next}");
        seen.extend(page);
        link = again;
    }
    seen
}

contract_test! {
    #[tokio::test]
    async fn next_links_walk_every_listing_to_its_end_by_cursor(engine) {
        let app = TestApp::spawn(engine).await;
        catalogue(&app).await;
        for filters in ["", "&q=e", "&author=jane%20austen", "&genre=science%20fiction", "&year_from=1800"] {
            for sort in ["id", "-id", "title", "-title", "author", "-author", "year", "-year", "created_at", "-created_at"] {
                let (whole, _, _) = list(&app, &format!("?limit=1000&sort={sort}{filters}")).await;
                let walked = follow(&app, &format!("?limit=2&sort={sort}{filters}")).await;
                assert_eq!(walked, whole, "sort={sort}{filters}");
            }
        }
    }
}

contract_test! {
    #[tokio::test]
    async fn a_cursor_keeps_its_place_when_books_are_added_before_it(engine) {
        let app = TestApp::spawn(engine).await;
        let all = catalogue(&app).await;
        let (first, _, link) = list(&app, "?limit=3&sort=title").await;
        // Two books that sort before every other: by offset, the next page would repeat two.
        app.create_titled("AAA first").await;
        app.create_titled("AAB second").await;
        let next = next_link(&link.unwrap()).unwrap();
        let (second, total, _) = list(&app, &next).await;
        assert_eq!(total, 9);
        assert!(first.iter().all(|id| !second.contains(id)), "{first:?} then {second:?}");
        assert_eq!(second.len(), 3);
        assert!(second.iter().all(|id| all.contains(id)));
    }
}

contract_test! {
    #[tokio::test]
    async fn a_bad_cursor_is_a_400_that_names_it(engine) {
        let app = TestApp::spawn(engine).await;
        catalogue(&app).await;
        let (_, _, link) = list(&app, "?limit=2&sort=-title").await;
        let next = next_link(&link.unwrap()).unwrap();
        let cursor = next.split('&').find_map(|p| p.strip_prefix("cursor=")).unwrap().to_owned();
        for query in [
            "?cursor=nonsense".to_owned(),
            "?cursor=aWQKc2V2ZW4K".to_owned(),
            format!("?cursor={cursor}&sort=title"),
            format!("?cursor={cursor}"),
            format!("?cursor={cursor}&sort=-title&offset=2"),
            format!("?cursor={}x&sort=-title", &cursor[..cursor.len() - 1]),
        ] {
            let response = app.get(&format!("/books{query}")).await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(error_fields(&body), ["cursor"], "{query}");
        }
        // A link made by an earlier release is refused, not read as the first page.
        let problem = assert_problem(app.get("/books?after=id%3A3").await, StatusCode::BAD_REQUEST).await;
        assert_eq!(error_fields(&problem), ["after"]);
    }
}

contract_test! {
    #[tokio::test]
    async fn limit_must_be_from_1_to_1000_and_offset_at_least_0(engine) {
        let app = TestApp::spawn(engine).await;
        assert_eq!(app.get("/books?limit=1000").await.status(), StatusCode::OK);
        for query in [
            "limit=0",
            "limit=1001",
            "limit=-5",
            "limit=ten",
            "limit=",
            "limit=2.5",
        ] {
            let problem =
                assert_problem(app.get(&format!("/books?{query}")).await, StatusCode::BAD_REQUEST).await;
            assert_eq!(error_fields(&problem), ["limit"], "{query}");
        }
        for query in ["offset=-1", "offset=x"] {
            let problem =
                assert_problem(app.get(&format!("/books?{query}")).await, StatusCode::BAD_REQUEST).await;
            assert_eq!(error_fields(&problem), ["offset"], "{query}");
        }
    }
}

contract_test! {
    #[tokio::test]
    async fn every_bad_query_parameter_is_listed(engine) {
        let app = TestApp::spawn(engine).await;
        let response = app
            .get("/books?limit=0&sort=price&year_from=old&year_to=3000")
            .await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(error_fields(&problem), ["limit", "sort", "year_from", "year_to"]);
        assert_eq!(problem["detail"], "4 query parameters are invalid");
    }
}

contract_test! {
    #[tokio::test]
    async fn q_is_a_case_insensitive_substring_of_title_or_author(engine) {
        let app = TestApp::spawn(engine).await;
        let all = catalogue(&app).await;
        let (found, total, _) = list(&app, "?q=DUNE").await;
        assert_eq!((found, total), (vec![all[0], all[4]], 2));
        let (found, _, _) = list(&app, "?q=austen").await;
        assert_eq!(found, vec![all[1], all[2]]);
        let (found, _, _) = list(&app, "?q=%C3%89COLE").await; // "ÉCOLE" finds "école"
        assert_eq!(found, vec![all[5]]);
        let (found, _, _) = list(&app, "?q=%C3%A9tranger").await; // "étranger" finds "L'Étranger"
        assert_eq!(found, vec![all[3]]);
        let (found, _, _) = list(&app, "?q=erb").await; // three letters: Herbert twice
        assert_eq!(found, vec![all[0], all[4]]);
        let (found, _, _) = list(&app, "?q=%20%20").await; // blank means no filter
        assert_eq!(found, all);
    }
}

contract_test! {
    #[tokio::test]
    async fn q_of_one_or_two_characters_matches_the_start_of_a_title_or_an_author(engine) {
        let app = TestApp::spawn(engine).await;
        let all = catalogue(&app).await;
        for (q, expected) in [
            ("d", vec![all[0]]),                    // Dune (not "Children of Dune": D is not its start)
            ("CH", vec![all[4]]),                   // Children of Dune
            ("fr", vec![all[0], all[4]]),           // Frank Herbert, frank herbert
            ("%C3%A9c", vec![all[5]]),              // école
            ("l%27", vec![all[3]]),                 // L'Étranger
            ("10", vec![all[6]]),                   // 100% "Quoted"
            ("%25", vec![]),                        // % starts nothing
            ("rb", vec![]),                         // inside Herbert, but at no start
        ] {
            let (found, total, _) = list(&app, &format!("?q={q}")).await;
            assert_eq!((found, total), (expected.clone(), expected.len() as i64), "q={q}");
        }
    }
}

contract_test! {
    #[tokio::test]
    async fn q_treats_quotes_and_wildcards_as_plain_text(engine) {
        let app = TestApp::spawn(engine).await;
        let all = catalogue(&app).await;
        for q in [
            "100%25",
            "%22Quoted%22",
            "_under_",
            "0%25%20%22",
            "%22Qu",
            "er_",
            "*%22*",
            "NEAR(a b)",
            "OR%20",
            "L%27%C3%89",
            "%27%C3%A9t",
        ] {
            let (found, _, _) = list(&app, &format!("?q={q}")).await;
            let expected: Vec<i64> = match q {
                "*%22*" | "NEAR(a b)" | "OR%20" => vec![],
                "L%27%C3%89" | "%27%C3%A9t" => vec![all[3]],
                _ => vec![all[6]],
            };
            assert_eq!(found, expected, "q={q}");
        }
    }
}

contract_test! {
    #[tokio::test]
    async fn author_and_genre_are_case_insensitive_exact_matches(engine) {
        let app = TestApp::spawn(engine).await;
        let all = catalogue(&app).await;
        let (found, _, _) = list(&app, "?author=FRANK%20HERBERT").await;
        assert_eq!(found, vec![all[0], all[4]]);
        let (found, _, _) = list(&app, "?author=Frank").await;
        assert!(found.is_empty(), "not a substring match");
        let (found, total, _) = list(&app, "?genre=Romance").await;
        assert_eq!((found, total), (vec![all[1], all[2]], 2));
        let (found, _, _) = list(&app, "?genre=science%20fiction&author=frank%20herbert").await;
        assert_eq!(found, vec![all[0], all[4]]);
        let (found, _, _) = list(&app, "?author=moli%C3%88re").await;
        assert_eq!(found, vec![all[5]]);
    }
}

contract_test! {
    #[tokio::test]
    async fn year_from_and_year_to_are_inclusive(engine) {
        let app = TestApp::spawn(engine).await;
        let all = catalogue(&app).await;
        let (found, _, _) = list(&app, "?year_from=1815&year_to=1942").await;
        assert_eq!(found, vec![all[1], all[2], all[3]]);
        let (found, _, _) = list(&app, "?year_to=0").await;
        assert_eq!(found, vec![all[6]]);
        let (found, _, _) = list(&app, "?year_from=1990&year_to=1800").await;
        assert!(found.is_empty());
    }
}

contract_test! {
    #[tokio::test]
    async fn every_sort_key_works_both_ways_with_ties_broken_by_id(engine) {
        let app = TestApp::spawn(engine).await;
        let all = catalogue(&app).await;
        let id = |i: usize| all[i];
        let cases: [(&str, Vec<i64>); 4] = [
            ("title", vec![id(6), id(4), id(0), id(1), id(3), id(2), id(5)]),
            ("author", vec![id(3), id(6), id(0), id(4), id(1), id(2), id(5)]),
            ("year", vec![id(6), id(5), id(1), id(2), id(3), id(0), id(4)]),
            ("id", all.clone()),
        ];
        for (key, ascending) in cases {
            let (found, _, _) = list(&app, &format!("?sort={key}")).await;
            assert_eq!(found, ascending, "sort={key}");
            let (found, _, _) = list(&app, &format!("?sort=-{key}")).await;
            let mut descending = ascending.clone();
            descending.reverse();
            if key == "author" {
                // Two pairs share an author (case-insensitively): ties stay in descending id order.
                descending = vec![id(5), id(2), id(1), id(4), id(0), id(6), id(3)];
            }
            assert_eq!(found, descending, "sort=-{key}");
        }
        let (found, _, _) = list(&app, "?sort=created_at").await;
        assert_eq!(found, all, "created in id order, same-second ties by id");
        let (found, _, _) = list(&app, "?sort=-created_at").await;
        assert_eq!(found, all.iter().rev().copied().collect::<Vec<_>>());
        let problem = assert_problem(app.get("/books?sort=price").await, StatusCode::BAD_REQUEST).await;
        assert_eq!(error_fields(&problem), ["sort"]);
    }
}

contract_test! {
    #[tokio::test]
    async fn the_total_counts_every_match_not_just_the_page(engine) {
        let app = TestApp::spawn(engine).await;
        catalogue(&app).await;
        let (found, total, link) = list(&app, "?year_from=1800&limit=1").await;
        assert_eq!(found.len(), 1);
        assert_eq!(total, 5, "every book but Molière's and the ancient one is from 1800 on");
        assert!(link.unwrap().contains("rel=\"next\""));
    }
}

contract_test! {
    #[tokio::test]
    async fn books_with_a_trailing_slash_is_the_same_collection(engine) {
        let app = TestApp::spawn(engine).await;
        let all = catalogue(&app).await;
        let (found, total, _) = list(&app, "/?limit=2").await;
        assert_eq!((found, total), (all[..2].to_vec(), 7));
        let response = app
            .post_json("/books/", &json!({"title": "T", "author": "A", "year": 1}))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
}

contract_test! {
    #[tokio::test]
    async fn search_agrees_with_a_plain_substring_scan(engine) {
        let app = TestApp::spawn(engine).await;
        let titles = [
            "Ångström Ålder",
            "ΣΟΦΙΑ σοφία",
            "Straße",
            "İstanbul",
            "naïve café",
            "ABCabc",
            "aaaa",
        ];
        for title in titles {
            app.create_titled(title).await;
        }
        let everything: Value = app.get("/books?limit=1000").await.json().await.unwrap();
        let books = everything.as_array().unwrap();
        for needle in [
            "ång",
            "σοφ",
            "ΣΟΦΙΑ",
            "straße",
            "STRASSE",
            "i̇st",
            "ïve c",
            "bca",
            "aaa",
            "aa",
            "é",
            "Some Author",
        ] {
            let expected: Vec<i64> = books
                .iter()
                .filter(|b| {
                    // A substring from three characters on (once folded); the start, below.
                    let folded = needle.to_lowercase();
                    ["title", "author"].iter().any(|f| {
                        let text = b[f].as_str().unwrap().to_lowercase();
                        if folded.chars().count() >= 3 {
                            text.contains(&folded)
                        } else {
                            text.starts_with(&folded)
                        }
                    })
                })
                .map(|b| b["id"].as_i64().unwrap())
                .collect();
            let url = format!("/books?limit=1000&q={}", urlencode(needle));
            let found: Value = app.get(&url).await.json().await.unwrap();
            assert_eq!(ids(&found), expected, "q={needle}");
        }
    }
}

fn urlencode(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

contract_test! {
    #[tokio::test]
    async fn a_page_writes_each_book_exactly_as_the_book_itself_is_written(engine) {
        let app = TestApp::spawn(engine).await;
        let ids = catalogue(&app).await;
        let tricky = app
            .create(json!({"title": "Back\\slash \"quote\" </b> \u{1F680}", "author": "Ü\u{00A0}ber", "year": 0}))
            .await;
        let mut each = Vec::new();
        for id in ids.iter().chain([&tricky["id"].as_i64().unwrap()]) {
            each.push(app.get(&format!("/books/{id}")).await.text().await.unwrap());
        }
        // Byte for byte: on SQLite the database writes the page, on PostgreSQL the backend.
        let page = app.get("/books?limit=100").await.text().await.unwrap();
        assert_eq!(page, format!("[{}]", each.join(",")));
        let empty = app.get("/books?offset=100").await.text().await.unwrap();
        assert_eq!(empty, "[]");
    }
}
