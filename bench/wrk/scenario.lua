-- One wrk script for every benchmark scenario, chosen with BENCH_SCENARIO:
--   get_by_id  GET {books}/{random id in 1..BENCH_MAX_ID}
--   list       GET the URL given to wrk (a fixed listing)
--   search     GET /books?q={random word or author}&limit=20
--   post       POST {books} with a new valid book
--   mix        90% get_by_id, 10% post
--   offsets    GET BENCH_PAGE_PATH followed by a random offset in 0..BENCH_MAX_OFFSET
--   words      GET BENCH_PAGE_PATH followed by a random word of the file BENCH_WORDS (one per
--              line): a different search at (nearly) every request, which no cache flatters
-- BENCH_BOOKS is the collection path ("/books", or "/books/" for the FastAPI original, which
-- redirects without the slash). BENCH_AUTHORIZATION, if set, is sent as the Authorization
-- header of every POST (changes need a credential). At the end it prints one JSON line with
-- the results.

local scenario = os.getenv("BENCH_SCENARIO") or "get_by_id"
local max_id = tonumber(os.getenv("BENCH_MAX_ID") or "10000")
local books = os.getenv("BENCH_BOOKS") or "/books"
local slash = books:sub(-1) == "/" and "" or "/"
local post_headers = { ["Content-Type"] = "application/json" }
if os.getenv("BENCH_AUTHORIZATION") then
  post_headers["Authorization"] = os.getenv("BENCH_AUTHORIZATION")
end

local words = {
  "silver", "hidden", "winter", "golden", "broken", "quiet", "burning", "distant", "lost", "wild",
  "river", "garden", "empire", "shadow", "mountain", "letter", "island", "forest", "city", "storm",
}

local page_path = os.getenv("BENCH_PAGE_PATH") or "/books?limit=20&offset="
local max_offset = tonumber(os.getenv("BENCH_MAX_OFFSET") or "1000")

local vocabulary = {}
if os.getenv("BENCH_WORDS") then
  for line in io.lines(os.getenv("BENCH_WORDS")) do
    table.insert(vocabulary, line)
  end
end

local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  thread_id = id or 0
  math.randomseed(os.time() * 1000 + thread_id)
end

local function get_by_id()
  return wrk.format("GET", books .. slash .. math.random(1, max_id))
end

local function post()
  counter = counter + 1
  local body = string.format(
    '{"title":"Bench book %d-%d","author":"Bench Author %d","year":%d,"genre":"Benchmark"}',
    thread_id, counter, counter % 997, 1900 + counter % 120)
  return wrk.format("POST", books, post_headers, body)
end

local function search()
  local q
  if math.random() < 0.5 then
    q = words[math.random(1, #words)]
  else
    q = "author%20" .. math.random(1, 4999)
  end
  return wrk.format("GET", "/books?limit=20&q=" .. q)
end

function request()
  if scenario == "get_by_id" then
    return get_by_id()
  elseif scenario == "post" then
    return post()
  elseif scenario == "search" then
    return search()
  elseif scenario == "offsets" then
    return wrk.format("GET", page_path .. math.random(0, max_offset))
  elseif scenario == "words" then
    return wrk.format("GET", page_path .. vocabulary[math.random(1, #vocabulary)])
  elseif scenario == "mix" then
    if math.random(1, 10) == 1 then
      return post()
    end
    return get_by_id()
  end
  return wrk.format("GET")
end

function done(summary, latency, requests)
  local e = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format(
    '{"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.connect, e.read, e.write, e.status, e.timeout))
end
