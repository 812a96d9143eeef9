"""The FastAPI original, re-created from its description for the side-by-side benchmark.

One SQLModel table `Book` over an SQLite file (or PostgreSQL, with a postgresql:// URL, for
the PostgreSQL comparison), a Session per request from a dependency,
prometheus-fastapi-instrumentator on /metrics, served by uvicorn with one worker. Kept as
the original had it, faults included (no pagination, validation as declared), because the
benchmark compares against what users actually ran.
"""

import os
from typing import Optional

from fastapi import Depends, FastAPI, HTTPException
from prometheus_fastapi_instrumentator import Instrumentator
from sqlmodel import Field, Session, SQLModel, create_engine, select


class Book(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    title: str = Field(min_length=1, max_length=50)
    author: str = Field(min_length=1, max_length=50)
    year: int
    genre: Optional[str] = Field(default=None, max_length=50)


DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite:///./books.db")
# SQLite's driver needs this option for a threaded server; PostgreSQL's takes no such option.
CONNECT_ARGS = {"check_same_thread": False} if DATABASE_URL.startswith("sqlite") else {}
engine = create_engine(DATABASE_URL, connect_args=CONNECT_ARGS)
SQLModel.metadata.create_all(engine)

app = FastAPI(title="Bookstore (FastAPI original)")
Instrumentator().instrument(app).expose(app)


def get_session():
    with Session(engine) as session:
        yield session


@app.post("/books/", response_model=Book)
def create_book(book: Book, session: Session = Depends(get_session)):
    session.add(book)
    session.commit()
    session.refresh(book)
    return book


@app.get("/books/", response_model=list[Book])
def read_books(session: Session = Depends(get_session)):
    return session.exec(select(Book)).all()


@app.get("/books/{book_id}", response_model=Book)
def read_book(book_id: int, session: Session = Depends(get_session)):
    book = session.get(Book, book_id)
    if not book:
        raise HTTPException(status_code=404, detail="Book not found")
    return book


@app.delete("/books/{book_id}")
def delete_book(book_id: int, session: Session = Depends(get_session)):
    book = session.get(Book, book_id)
    if not book:
        raise HTTPException(status_code=404, detail="Book not found")
    session.delete(book)
    session.commit()
    return {"ok": True}
