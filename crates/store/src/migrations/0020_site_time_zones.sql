-- A site keeps either a fixed UTC offset (utc_offset '+08:00', time_zone NULL) or follows an IANA
-- time zone with its daylight-saving changes (time_zone 'Europe/Berlin', utc_offset '').
ALTER TABLE sites ADD COLUMN time_zone TEXT;
