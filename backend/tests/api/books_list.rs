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
        let last = books[99];
        assert_eq!(link.unwrap(), format!("</books?limit=100&after=id%3A{last}>; rel=\"next\""));
    }
}

contract_test! {
    #[tokio::test]
    async fn limit_and_offset_page_through_with_links(engine) {
        let app = TestApp::spawn(engine).await;
        let all = catalogue(&app).await;
        let (first, total, link) = list(&app, "?limit=3").await;
        assert_eq!((first.as_slice(), total), (&all[0..3], 7));
        assert_eq!(link.unwrap(), format!("</books?limit=3&after=id%3A{}>; rel=\"next\"", all[2]));

        let (middle, _, link) = list(&app, "?limit=3&offset=3").await;
        assert_eq!(middle, &all[3..6]);
        assert_eq!(
            link.unwrap(),
            format!(
                "</books?limit=3&after=id%3A{}>; rel=\"next\", </books?limit=3&offset=0>; rel=\"prev\"",
                all[5]
            )
        );

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
        let (found, total, link) = list(&app, "?q=e&sort=-year&limit=2&year_from=1800").await;
        assert_eq!(total, 5);
        // The second book is "Dune" (1965): the cursor holds its year and id.
        assert_eq!(
            link.unwrap(),
            format!(
                "</books?limit=2&after=-year%3A{}%3A1965&q=e&year_from=1800&sort=-year>; rel=\"next\"",
                found[1]
            )
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
        for query in [
            "?after=nonsense",
            "?after=id%3Aseven",
            "?after=title%3A3%3Adune",
            "?after=year%3A3%3Anineteen&sort=year",
            "?after=created_at%3A3%3A99999999999999&sort=created_at",
            "?after=-title%3A3%3Adune&sort=title",
            "?after=id%3A3&offset=2",
        ] {
            let response = app.get(&format!("/books{query}")).await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(error_fields(&body), ["after"], "{query}");
        }
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
        let (found, _, _) = list(&app, "?q=rb").await; // two letters: Herbert twice
        assert_eq!(found, vec![all[0], all[4]]);
        let (found, _, _) = list(&app, "?q=%20%20").await; // blank means no filter
        assert_eq!(found, all);
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
            "%25",
            "_",
            "%22",
            "*",
            "NEAR(a b)",
            "OR",
            "%27",
        ] {
            let (found, _, _) = list(&app, &format!("?q={q}")).await;
            let expected: Vec<i64> = match q {
                "*" | "NEAR(a b)" => vec![],
                "OR" => vec![],
                "%27" => vec![all[3]],
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
        let (found, total, link) = list(&app, "?q=a&limit=1").await;
        assert_eq!(found.len(), 1);
        assert_eq!(total, 6, "every book but the one by Molière has an a");
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
                    let folded = needle.to_lowercase();
                    ["title", "author"]
                        .iter()
                        .any(|f| b[f].as_str().unwrap().to_lowercase().contains(&folded))
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

/// On PostgreSQL every listing filtered by author or genre (or not at all) and sorted any way,
/// at any offset or cursor, and a year range sorted by year, reads its page off an index that
/// matches the filter and the sort: `EXPLAIN` shows neither a sequential scan nor a sort of
/// more than a page's worth of rows, on a catalogue large enough that the planner would choose
/// them if it had to. A filter that
/// matches many books may be walked along the sort's own index, testing the filter (the plan
/// PostgreSQL prefers when matches are dense); one that matches few needs an index of
/// (filter, sort key, id), or PostgreSQL fetches every match and sorts them. (`q` is the
/// exception, and documented: its trigram index finds the matches, which are then sorted.)
mod listing_plans {
    use super::*;
    use bookstore::domain::{After, ListQuery, SortKey, SortValue};
    use bookstore::store::Store;

    #[tokio::test]
    async fn postgres() {
        let Some(engine) = crate::helpers::Engine::postgres() else {
            return;
        };
        let app = TestApp::spawn(engine).await;
        let Store::Postgres(store) = &app.store else {
            unreachable!("a PostgreSQL app")
        };
        // In one transaction without the pool's statement time limit: a loaded machine may
        // take longer than it to write 100,000 rows and their fourteen indexes.
        let mut setup = store.pool().begin().await.unwrap();
        sqlx::query("SET LOCAL statement_timeout = 0")
            .execute(&mut *setup)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO books (title, author, year, genre, created_at, updated_at, title_key, author_key, genre_key) \
             SELECT 'Book ' || i, a, 1900 + i % 120, g, now() - i * interval '1 second', now(), \
                    'book ' || i, lower(a), lower(g) \
             FROM generate_series(1, 100000) AS i, \
                  LATERAL (SELECT CASE WHEN i % 40 = 1 THEN 'Rare' \
                                       ELSE (ARRAY['Fiction', 'History', 'Poetry', 'Science', 'Travel'])[1 + i % 5] END AS g, \
                                  CASE WHEN i % 4 = 0 THEN 'Prolific' ELSE 'Author ' || (i % 2000) END AS a) AS book",
        )
        .execute(&mut *setup)
        .await
        .unwrap();
        sqlx::query("ANALYZE books").execute(&mut *setup).await.unwrap();
        setup.commit().await.unwrap();

        // Filters that match many books (a fifth are fiction, a quarter by one prolific
        // author) and few (2.5% are rare, and other authors have about 40 books each).
        let filters = [
            (None, None),
            (Some("Prolific"), None),
            (Some("Author 7"), None),
            (None, Some("fiction")),
            (None, Some("rare")),
        ];
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let mut queries = Vec::new();
        for (author, genre) in filters {
            for sort in [
                SortKey::Id,
                SortKey::Title,
                SortKey::Author,
                SortKey::Year,
                SortKey::CreatedAt,
            ] {
                for descending in [false, true] {
                    let value = match sort {
                        SortKey::Id => SortValue::Id,
                        SortKey::Title => SortValue::Text("book 5".into()),
                        SortKey::Author => SortValue::Text("author 7".into()),
                        SortKey::Year => SortValue::Number(1950),
                        // Half-way back through the books' creation times (one a second, to now).
                        SortKey::CreatedAt => SortValue::Number(now - 50_000),
                    };
                    for (offset, after) in [(0, None), (100, None), (0, Some(After { id: 500, value }))] {
                        queries.push(ListQuery {
                            limit: 20,
                            offset,
                            author: author.map(str::to_owned),
                            genre: genre.map(str::to_owned),
                            sort,
                            descending,
                            after,
                            ..ListQuery::default()
                        });
                    }
                }
            }
        }
        queries.push(ListQuery {
            year_from: Some(1950),
            year_to: Some(1960),
            sort: SortKey::Year,
            ..ListQuery::default()
        });
        for query in queries {
            let plan = store.listing_plan(&query).await.unwrap();
            // A filter that matches too few books to walk another order for, and too many to
            // sort (2.5%: 2,500 here, 25,000 in a million), must be an index's condition, read
            // in the sort's order: not a bitmap of matches, which are then sorted. (Sorted by
            // id, PostgreSQL may rather walk the primary key, testing the genre: the table is
            // in id order, so that walk reads the table in order, and is cheap.)
            if query.genre.as_deref() == Some("rare") && query.sort != SortKey::Id {
                let column = "genre_key";
                let in_order = plan
                    .iter()
                    .any(|l| l.contains("Index Cond") && l.contains(column))
                    && !plan.iter().any(|l| l.contains("Bitmap"));
                assert!(in_order, "{query:?}\n{}", plan.join("\n"));
            }
            // A sort of at most a page's worth of rows (1000, the largest limit) is bounded;
            // one of every match is what the indexes are there to avoid.
            let falls_back = plan.iter().any(|line| {
                let node = line.trim_start().trim_start_matches("->").trim_start();
                let rows = || {
                    node.split("rows=")
                        .nth(1)
                        .and_then(|rest| rest.split(' ').next())
                        .and_then(|n| n.parse::<u64>().ok())
                        .unwrap_or(u64::MAX)
                };
                let sort = node.starts_with("Sort ") || node.starts_with("Incremental Sort ");
                node.starts_with("Seq Scan") || (sort && node.contains("(cost=") && rows() > 1000)
            });
            assert!(!falls_back, "{query:?}\n{}", plan.join("\n"));
        }
    }
}
