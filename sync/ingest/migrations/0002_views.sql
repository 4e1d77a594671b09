-- The queries the central staff need, as views (docs/central.md). Days are local days in China
-- (Asia/Shanghai), from the box's wall clock; events whose flags hold clock_unsynced carry a
-- wall time the box could not trust, and the views that use time say so.

-- Events per institution and day.
CREATE VIEW events_per_institution_day AS
SELECT institution,
       (coalesce(time, received) AT TIME ZONE 'Asia/Shanghai')::date AS day,
       count(*) AS events,
       count(*) FILTER (WHERE kind IN ('sign_in', 'sign_out', 'voucher_checkin')) AS attendance,
       count(*) FILTER (WHERE kind = 'sign_in') AS sign_ins,
       count(*) FILTER (WHERE kind = 'refusal') AS refusals,
       count(*) FILTER (WHERE kind = 'alarm') AS alarms,
       count(*) FILTER (WHERE flags <> '{}') AS flagged,
       count(*) FILTER (WHERE 'clock_unsynced' = ANY (flags)) AS clock_unsynced,
       count(DISTINCT trainee) AS trainees,
       count(DISTINCT device) AS devices
FROM events
GROUP BY 1, 2;

-- Backlog and last contact per device: what the central holds (acked_through, the end of the
-- verified chain of the device's latest epoch), what the device claims (head: its last state's
-- head_seq, or a batch seen ahead of a gap), and what it last said of itself.
CREATE VIEW device_backlog AS
SELECT d.device, d.institution,
       coalesce((d.state ->> 'online')::boolean, false) AS online,
       d.epoch,
       coalesce(c.seq, 0) AS acked_through,
       greatest(d.head_seen, coalesce(c.seq, 0)) AS head,
       greatest(d.head_seen, coalesce(c.seq, 0)) - coalesce(c.seq, 0) AS backlog,
       (d.state ->> 'backlog')::bigint AS reported_backlog,
       (d.state ->> 'oldest_unacked_age')::float8 AS oldest_unacked_age,
       d.last_seen,
       now() - d.last_seen AS silent_for,
       d.last_error
FROM devices d
LEFT JOIN chains c ON c.device = d.device AND c.epoch = d.epoch;

-- Devices silent for more than a day (or never heard from since they were registered).
CREATE VIEW devices_silent AS
SELECT * FROM device_backlog
WHERE last_seen IS NULL OR last_seen < now() - interval '1 day';

-- Chains with problems: integrity alarms; a backlog that has not moved for an hour (a gap the
-- device does not fill); an epoch that ended short of what the device said it held; a device
-- that started a new epoch (its ledger was lost or replaced: every new epoch needs a reason);
-- and a stored chain with a hole (never expected: the store writes only contiguous chains).
CREATE VIEW chain_problems AS
SELECT a.device, d.institution, a.epoch, 'integrity alarm: ' || a.kind AS problem, a.detail, a.at
FROM alarms a LEFT JOIN devices d USING (device)
UNION ALL
SELECT b.device, b.institution, b.epoch, 'backlog not draining',
       format('holds 1..%s, the device claims %s; last contact %s', b.acked_through, b.head, b.last_seen), b.last_seen
FROM device_backlog b
WHERE b.backlog > 0 AND b.last_seen < now() - interval '1 hour'
UNION ALL
SELECT c.device, d.institution, c.epoch, 'new epoch',
       format('epoch %s ended at seq %s; the device went on in epoch %s', c.epoch, c.seq,
              (SELECT min(n.epoch) FROM chains n WHERE n.device = c.device AND n.epoch > c.epoch)), c.updated
FROM chains c JOIN devices d USING (device)
WHERE c.epoch < d.epoch
UNION ALL
SELECT c.device, d.institution, c.epoch, 'hole in the stored chain',
       format('chain end %s, %s events stored', c.seq, count(e.seq)), c.updated
FROM chains c JOIN devices d USING (device) LEFT JOIN events e ON e.device = c.device AND e.epoch = c.epoch
GROUP BY c.device, d.institution, c.epoch, c.seq, c.updated
HAVING count(e.seq) <> c.seq;

-- The sessions of every published roster (the latest version that names each session).
CREATE VIEW roster_sessions AS
SELECT DISTINCT ON (s ->> 'id')
       s ->> 'id' AS session, s ->> 'programme' AS programme, s ->> 'class' AS class,
       (s ->> 'start')::timestamptz AS starts, (s ->> 'end')::timestamptz AS ends, d.version AS roster_version
FROM datasets d, jsonb_array_elements(convert_from(d.content, 'UTF8')::jsonb -> 'sessions') AS s
WHERE d.name = 'roster'
ORDER BY s ->> 'id', d.version DESC;

-- Class hours, approximated from sign-in/sign-out pairs: per trainee, session and local day, the
-- first sign-in and the last sign-out, clamped to the session's scheduled start and end when the
-- roster names the session. A day with a sign-in and no sign-out after it (or the reverse)
-- counts 0 hours and is marked unpaired; one whose events carry clock_unsynced is marked
-- doubtful. Refusals and duplicates are other kinds and never count.
CREATE VIEW class_hours AS
WITH spans AS (
    SELECT trainee, session, institution,
           (time AT TIME ZONE 'Asia/Shanghai')::date AS day,
           min(time) FILTER (WHERE kind = 'sign_in') AS signed_in,
           max(time) FILTER (WHERE kind = 'sign_out') AS signed_out,
           bool_or('clock_unsynced' = ANY (flags)) AS doubtful
    FROM events
    WHERE trainee IS NOT NULL AND session IS NOT NULL AND time IS NOT NULL AND kind IN ('sign_in', 'sign_out')
    GROUP BY 1, 2, 3, 4
)
SELECT s.trainee, coalesce(r.programme, '') AS programme, s.session, s.institution, s.day,
       s.signed_in, s.signed_out,
       CASE WHEN s.signed_in IS NULL OR s.signed_out IS NULL THEN 0
            ELSE round((greatest(0, extract(epoch FROM least(s.signed_out, coalesce(r.ends, s.signed_out))
                                                   - greatest(s.signed_in, coalesce(r.starts, s.signed_in)))) / 3600.0)::numeric, 2)
       END AS hours,
       s.signed_in IS NULL OR s.signed_out IS NULL OR s.signed_out <= s.signed_in AS unpaired,
       s.doubtful
FROM spans s LEFT JOIN roster_sessions r ON r.session = s.session;

-- Class hours per trainee and programme.
CREATE VIEW class_hours_per_trainee_programme AS
SELECT trainee, programme,
       count(*) AS days,
       sum(hours) AS hours,
       count(*) FILTER (WHERE unpaired) AS unpaired_days,
       count(*) FILTER (WHERE doubtful) AS doubtful_days
FROM class_hours
GROUP BY trainee, programme;
