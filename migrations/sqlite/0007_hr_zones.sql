-- coachd schema, version 7: time in heart-rate zones as a source counted it, for an
-- activity the source gives no samples of (WHOOP's zone durations), so cardio minutes
-- and "zone N" homework are judged from it as from the histogram of samples.
--
-- JSON: {"max_hr": 195, "bands": [[0, ms], [50, ms], [60, ms], ...]}, each band's lower
-- bound in percent of `max_hr` (the max HR the source counted against; absent when the
-- source did not say) and the milliseconds spent in it (model::ZoneTime). NULL: none.
ALTER TABLE activities ADD COLUMN hr_zones TEXT;
