//! The sample catalogue a brand-new database starts with, so a newcomer's first screen is
//! not empty. `--demo-data false` (or `BOOKSTORE_DEMO_DATA=false`) turns it off.

use crate::deadline::Deadline;
use crate::domain::{Author, Genre, NewBook, Title, Year};
use crate::error::{Error, Result};
use crate::store::Catalogue;

fn sample(title: &str, author: &str, year: i64, genre: &str) -> Result<NewBook, &'static str> {
    Ok(NewBook {
        title: Title::parse(title)?,
        author: Author::parse(author)?,
        year: Year::new(year)?,
        genre: Genre::parse(genre)?,
    })
}

const CATALOGUE: [(&str, &str, i64, &str); 12] = [
    ("Dune", "Frank Herbert", 1965, "Science fiction"),
    ("Pride and Prejudice", "Jane Austen", 1813, "Romance"),
    ("Nineteen Eighty-Four", "George Orwell", 1949, "Dystopian"),
    (
        "One Hundred Years of Solitude",
        "Gabriel García Márquez",
        1967,
        "Magical realism",
    ),
    (
        "The Left Hand of Darkness",
        "Ursula K. Le Guin",
        1969,
        "Science fiction",
    ),
    ("Things Fall Apart", "Chinua Achebe", 1958, "Literary fiction"),
    ("The Name of the Rose", "Umberto Eco", 1980, "Mystery"),
    ("Beloved", "Toni Morrison", 1987, "Literary fiction"),
    ("The Hobbit", "J. R. R. Tolkien", 1937, "Fantasy"),
    (
        "Crime and Punishment",
        "Fyodor Dostoevsky",
        1866,
        "Literary fiction",
    ),
    ("The Odyssey", "Homer", -700, "Epic poetry"),
    ("Kafka on the Shore", "Haruki Murakami", 2002, "Magical realism"),
];

/// Adds the sample catalogue. Called only for a database that was just created.
pub async fn seed_demo_catalogue(store: &dyn Catalogue) -> Result<usize> {
    for (title, author, year, genre) in CATALOGUE {
        let book = sample(title, author, year, genre)
            .map_err(|rule| Error::Internal(format!("sample book {title:?}: {rule}").into()))?;
        store.create_book(book, None, &Deadline::none()).await?;
    }
    Ok(CATALOGUE.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_book_obeys_the_rules() {
        for (title, author, year, genre) in CATALOGUE {
            let book = sample(title, author, year, genre).unwrap();
            assert!(book.genre.is_some(), "{title} has a genre");
        }
    }
}
