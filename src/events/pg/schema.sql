-- coord's log on a PostgreSQL server (schema version 2): the tables and the few server-side
-- functions the store (coord.events.pg_store) uses.
--
-- Loaded verbatim, in one transaction, under the advisory lock (1668247410, 0), so that two
-- `coord init --store` at once create it once. Every object lives in the schema `coord`; one
-- database holds one log. Text that coord sorts or compares is COLLATE "C": ids, ts, names
-- and types order by their bytes, as in SQLite, whatever the database's locale (ts is a
-- fixed-width RFC 3339 string, so byte order is time order). Design: docs/postgres.md.

CREATE SCHEMA coord;

-- The log's bookkeeping: schema_version, fold_version, max_clock_skew_us, log_id, created,
-- search_unaccent, and the store's flags (search_rebuild).
CREATE TABLE coord.meta (
    key   text COLLATE "C" PRIMARY KEY,
    value text NOT NULL
);

-- The log. seq: gapless, in commit order. It is max(seq) + 1 as the appending transaction
-- sees it (REPEATABLE READ): two appends in flight both want the same number, the primary
-- key lets one commit and the other fail and run again, so a committed seq N + 1 was
-- numbered by a transaction that saw N committed. Never a sequence (gaps, and numbers out
-- of commit order). body: the canonical bytes exactly as hashed (the client computes the
-- BLAKE3). audit: 1 when the event belongs in the audit file (decided at append); whether a
-- checkout's file holds it is that checkout's own record (coord.checkouts). stored: the
-- server's clock (µs) when the appending transaction read it.
CREATE TABLE coord.events (
    seq    bigint PRIMARY KEY CHECK (seq > 0),
    id     text COLLATE "C" NOT NULL UNIQUE CHECK (id ~ '^b3:[0-9a-f]{64}$'),
    ts     text COLLATE "C" NOT NULL,
    "from" text COLLATE "C" NOT NULL,
    "to"   text COLLATE "C" NOT NULL,
    type   text COLLATE "C" NOT NULL,
    worker text COLLATE "C",
    body   bytea NOT NULL,
    origin text COLLATE "C" NOT NULL CHECK (origin IN ('local', 'import')),
    audit  smallint NOT NULL CHECK (audit IN (0, 1)),
    stored bigint
);
CREATE INDEX events_ts ON coord.events (ts, id);
CREATE INDEX events_worker ON coord.events (worker, ts, id) WHERE worker IS NOT NULL;
CREATE INDEX events_worker_transitions ON coord.events (worker, ts, id)
    WHERE worker IS NOT NULL AND type <> 'worker.heartbeat';
CREATE INDEX events_type ON coord.events (type);
CREATE INDEX events_from ON coord.events ("from");
CREATE INDEX events_to ON coord.events ("to", seq);
CREATE INDEX events_audit ON coord.events (seq) WHERE audit = 1;

-- Worker views: opaque bytes (the projector's encoding) plus the columns the application
-- filters on. fillfactor: a heartbeat changes no indexed column, so its update stays HOT.
CREATE TABLE coord.workers (
    worker   text COLLATE "C" PRIMARY KEY,
    state    text COLLATE "C" NOT NULL,
    holder   text COLLATE "C",
    assignee text COLLATE "C",
    created  text COLLATE "C" NOT NULL,
    updated  text COLLATE "C" NOT NULL,
    branch   text COLLATE "C",
    base     text COLLATE "C",
    worktree text COLLATE "C",
    view     bytea NOT NULL,
    -- the work graph (coord.projections.graph): ASSIGNED with every dependency COMPLETED;
    -- how many dependencies are not; 0 (highest) … 4
    ready    boolean NOT NULL DEFAULT false,
    priority integer NOT NULL DEFAULT 2,
    waiting  integer NOT NULL DEFAULT 0,
    -- the text board's columns (coord.events.records.BoardRow; no index holds them, so a
    -- heartbeat's update stays a HOT update)
    board_head     text,
    board_note     text,
    board_since    bigint,
    board_beat     bigint,
    board_live     bigint,
    board_interval double precision,
    board_clone    text
) WITH (fillfactor = 80);
CREATE INDEX workers_state ON coord.workers (state, created, worker);
CREATE INDEX workers_holder ON coord.workers (holder) WHERE holder IS NOT NULL;
CREATE INDEX workers_branch ON coord.workers (branch) WHERE branch IS NOT NULL;
CREATE INDEX workers_base ON coord.workers (base) WHERE base IS NOT NULL;
-- The ready queue: `ready --limit 20` reads 20 index entries whatever the graph's size.
CREATE INDEX workers_ready ON coord.workers (priority, created, worker) WHERE ready;

-- The dependency index (worker waits for after) and its reverse (who waits for X).
CREATE TABLE coord.deps (
    worker text COLLATE "C" NOT NULL,
    after  text COLLATE "C" NOT NULL,
    PRIMARY KEY (worker, after)
);
CREATE INDEX deps_after ON coord.deps (after, worker);

CREATE TABLE coord.projection_state (
    name     text COLLATE "C" PRIMARY KEY,
    last_seq bigint NOT NULL
);

CREATE TABLE coord.request_ids (
    actor  text COLLATE "C" NOT NULL,
    key    text COLLATE "C" NOT NULL,
    result bytea NOT NULL,
    PRIMARY KEY (actor, key)
);

-- Inboxes: the ids each agent acknowledged (the projection of inbox.acked events, kept
-- for ids not stored yet), and per agent and address the seq up to which every message is
-- acknowledged (a watermark, so the inbox read starts there).
CREATE TABLE coord.acks (
    agent text COLLATE "C" NOT NULL,
    id    text COLLATE "C" NOT NULL,
    PRIMARY KEY (agent, id)
);
CREATE TABLE coord.cursors (
    agent   text COLLATE "C" NOT NULL,
    address text COLLATE "C" NOT NULL,
    seq     bigint NOT NULL,
    PRIMARY KEY (agent, address)
);

-- Notices (coord.projections.notices): a lifecycle event that changed or ended an attempt
-- an agent held, one row per (agent, seq); pending ones through a partial index.
CREATE TABLE coord.notices (
    agent   text COLLATE "C" NOT NULL,
    seq     bigint NOT NULL,
    worker  text COLLATE "C" NOT NULL,
    attempt integer NOT NULL,
    reason  text NOT NULL,
    acked   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (agent, seq)
);
CREATE INDEX notices_pending ON coord.notices (agent, seq) WHERE NOT acked;
CREATE INDEX notices_worker ON coord.notices (worker);

-- Each checkout's audit file (.coord/events.jsonl on one machine): events with audit = 1
-- and seq <= upto are written there, events above it dirty, except where checkout_marks
-- says otherwise (1 dirty, 2 written). checkout_meta: that file's record (audit_length, ...).
CREATE TABLE coord.checkouts (
    checkout text COLLATE "C" PRIMARY KEY,
    upto     bigint NOT NULL DEFAULT 0
);
CREATE TABLE coord.checkout_marks (
    checkout text COLLATE "C" NOT NULL,
    seq      bigint NOT NULL,
    mark     smallint NOT NULL CHECK (mark IN (1, 2)),
    PRIMARY KEY (checkout, seq)
);
CREATE TABLE coord.checkout_meta (
    checkout text COLLATE "C" NOT NULL,
    key      text COLLATE "C" NOT NULL,
    value    text NOT NULL,
    PRIMARY KEY (checkout, key)
);

-- Blobs: content-addressed, in 1 MiB chunks of bytea; a blob row exists only once all its
-- chunks do (one transaction). Readers re-hash (the server has no BLAKE3).
CREATE TABLE coord.blobs (
    hash   text COLLATE "C" PRIMARY KEY CHECK (hash ~ '^b3:[0-9a-f]{64}$'),
    size   bigint NOT NULL CHECK (size >= 0),
    chunks integer NOT NULL CHECK (chunks >= 0)
);
CREATE TABLE coord.blob_chunks (
    hash text COLLATE "C" NOT NULL,
    n    integer NOT NULL CHECK (n >= 0),
    data bytea NOT NULL,
    PRIMARY KEY (hash, n)
);

-- Full-text search: one row per indexed event; text as projections/search.py extracted it.
CREATE TABLE coord.search (
    seq  bigint PRIMARY KEY,
    type text COLLATE "C" NOT NULL,
    text text NOT NULL,
    tsv  tsvector NOT NULL
);
CREATE INDEX search_tsv ON coord.search USING gin (tsv);
-- rebuild's fresh index beside the live one
CREATE TABLE coord.search_new (LIKE coord.search INCLUDING ALL);

-- Words as they are (no stemming, like FTS5's unicode61), lower-cased, diacritics removed
-- where the server has `unaccent`.
CREATE TEXT SEARCH CONFIGURATION coord.search (COPY = pg_catalog.simple);
DO $$
DECLARE
    dict text;
BEGIN
    BEGIN
        CREATE EXTENSION IF NOT EXISTS unaccent SCHEMA coord;
        SELECT quote_ident(n.nspname) || '.unaccent' INTO STRICT dict
        FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace
        WHERE x.extname = 'unaccent';
        EXECUTE format('ALTER TEXT SEARCH CONFIGURATION coord.search ALTER MAPPING FOR '
                       'asciiword, asciihword, hword_asciipart, word, hword, hword_part '
                       'WITH %s, pg_catalog.simple', dict);
        INSERT INTO coord.meta (key, value) VALUES ('search_unaccent', 'yes');
    EXCEPTION WHEN OTHERS THEN
        INSERT INTO coord.meta (key, value) VALUES ('search_unaccent', 'no');
    END;
END $$;

CREATE FUNCTION coord.now_us() RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint
$$;

-- ASCII punctuation separates words (msg.review, a-b, paths), as in FTS5's unicode61.
CREATE FUNCTION coord.words(p text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $f$
    SELECT translate(p, '!"#$%&''()*+,-./:;<=>?@[\]^_`{|}~', repeat(' ', 32))
$f$;

-- The tsvector of an event's type and text; a text whose tsvector would pass PostgreSQL's
-- 1 MB limit is indexed by its head, halved until it fits.
CREATE FUNCTION coord.tsv(p_type text, p_text text) RETURNS tsvector
LANGUAGE plpgsql STABLE AS $$
DECLARE
    n integer := length(p_text);
BEGIN
    IF octet_length(p_text) <= 200000 THEN
        RETURN to_tsvector('coord.search', coord.words(p_type))
            || to_tsvector('coord.search', coord.words(p_text));
    END IF;
    LOOP
        BEGIN
            RETURN to_tsvector('coord.search', coord.words(p_type))
                || to_tsvector('coord.search', coord.words(left(p_text, n)));
        EXCEPTION WHEN program_limit_exceeded THEN
            n := n / 2;
        END;
    END LOOP;
END $$;

-- An event's mark for one checkout's audit file: 0 not for the file, 1 dirty, 2 written.
CREATE FUNCTION coord.mark(p_checkout text, p_seq bigint, p_audit smallint) RETURNS smallint
LANGUAGE sql STABLE AS $$
    SELECT (CASE WHEN p_audit = 0 THEN 0 ELSE coalesce(
        (SELECT m.mark FROM coord.checkout_marks m WHERE m.checkout = p_checkout AND m.seq = p_seq),
        CASE WHEN p_seq <= coalesce((SELECT c.upto FROM coord.checkouts c WHERE c.checkout = p_checkout), 0)
             THEN 2 ELSE 1 END) END)::smallint
$$;
