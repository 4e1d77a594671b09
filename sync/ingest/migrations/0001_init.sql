-- The central store of kaoqin ingesters (docs/central.md). Every ingester applies the migrations
-- it does not find in schema_migrations at start, in one transaction under an advisory lock.

-- One row per device: its key, its institution, the highest epoch stored, the highest head it
-- claimed beyond what is stored (in a state message, or a batch ahead of a gap: the views take
-- the greater of it and the chain's end), its last contact (written at most every few seconds
-- while it sends) and last reported state (members of a group receive a device's states in
-- turn: the one received last wins, whichever member commits last).
CREATE TABLE devices (
    device      text PRIMARY KEY,
    institution text NOT NULL,
    public_key  bytea,
    epoch       bigint NOT NULL DEFAULT 0,
    head_seen   bigint NOT NULL DEFAULT 0,
    first_seen  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz,
    state       jsonb,
    state_at    timestamptz, -- when the ingester that stored the state received it
    applied     jsonb NOT NULL DEFAULT '{}',
    last_error  text NOT NULL DEFAULT ''
);

-- The verified, contiguous end of each device epoch: every event of the epoch with seq <= seq is
-- in events, and head is the SHA-256 of the record at seq. Moved only in the transaction that
-- inserts the events, with the device's row locked.
CREATE TABLE chains (
    device  text NOT NULL REFERENCES devices,
    epoch   bigint NOT NULL,
    seq     bigint NOT NULL,
    head    bytea NOT NULL,
    updated timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device, epoch)
);

-- Every event exactly once, under its unique (device, epoch, seq): the record as the device
-- signed it (64-byte signature, then the body), and the decoded columns the staff query.
-- time is the box's wall clock (order by epoch and seq where flags hold clock_unsynced).
CREATE TABLE events (
    device      text NOT NULL,
    epoch       bigint NOT NULL,
    seq         bigint NOT NULL,
    institution text NOT NULL,
    kind        text NOT NULL,
    trainee     text,
    session     text,
    method      text,
    flags       text[] NOT NULL DEFAULT '{}',
    time        timestamptz,
    received    timestamptz NOT NULL DEFAULT now(),
    record      bytea NOT NULL,
    PRIMARY KEY (device, epoch, seq)
);
CREATE INDEX events_trainee ON events (trainee, time) WHERE trainee IS NOT NULL;

-- The evidence photos events refer to, by content (the JPEGs travel on up/evidence).
CREATE TABLE evidence (
    device text NOT NULL,
    epoch  bigint NOT NULL,
    seq    bigint NOT NULL,
    sha256 text NOT NULL,
    kind   text NOT NULL,
    size   bigint NOT NULL,
    PRIMARY KEY (device, epoch, seq, sha256)
);
CREATE INDEX evidence_sha256 ON evidence (sha256);

-- Integrity alarms: a record other than the one held under its (device, epoch, seq), or a batch
-- that does not verify. Each one needs a human.
CREATE TABLE alarms (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    device   text NOT NULL,
    epoch    bigint NOT NULL,
    seq      bigint NOT NULL,
    kind     text NOT NULL CHECK (kind IN ('conflict', 'unverified')),
    held     text NOT NULL DEFAULT '',
    received text NOT NULL DEFAULT '',
    detail   text NOT NULL DEFAULT ''
);
CREATE INDEX alarms_device ON alarms (device, at);

-- Published dataset versions (the content as signed into manifests).
CREATE TABLE datasets (
    name      text NOT NULL,
    version   bigint NOT NULL,
    sha256    text NOT NULL,
    size      bigint NOT NULL,
    content   bytea NOT NULL,
    published timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);

-- Every signed command sent; id increases across all ingesters sharing the database.
CREATE TABLE commands (
    id          bigint PRIMARY KEY,
    device      text NOT NULL,
    institution text NOT NULL,
    cmd         text NOT NULL,
    epoch       bigint NOT NULL DEFAULT 0,
    from_seq    bigint NOT NULL DEFAULT 0,
    issued      timestamptz NOT NULL
);
CREATE INDEX commands_device ON commands (device, issued);
