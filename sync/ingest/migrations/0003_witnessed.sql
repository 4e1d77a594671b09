-- Witnessed heads (docs/mqtt.md, "Witnessed heads"): the highest head each device ever signed in
-- its state message, as JSON {"epoch","seq","hash","seen"}; a later chain that is shorter, or
-- different at that seq, raises an integrity alarm of kind 'head'.
ALTER TABLE devices ADD COLUMN witnessed jsonb;
ALTER TABLE alarms DROP CONSTRAINT alarms_kind_check;
ALTER TABLE alarms ADD CONSTRAINT alarms_kind_check CHECK (kind IN ('conflict', 'unverified', 'head'));
