//! `coachd demo`: a realistic, deterministic data set, written through the same ingest
//! path as every real source: four clients over three months, every homework kind, every
//! verdict state, several sources that record the same workouts (deduplicated by the
//! evidence view), self-reported check-ins and excused days.
//!
//! | client | homework | story |
//! |---|---|---|
//! | alex | cardio on off-days, nightly push-ups, 8,000 steps | steady; push-ups rising; three sick days excused; monthly push-up tests |
//! | sam | zone 2 twice a week, 7 h sleep, mobility 3×/week | reliable |
//! | jordan | daily cardio, nightly squats, steps | good for two months, slipping for two weeks |
//! | riley | recovery routine daily, 2 runs a week | started three weeks ago |

use crate::engine::phrase;
use crate::engine::rule::Schedule;
use crate::model::{Batch, Cursor, DailyMetric, Metric, NewActivity, Sample, Series, SeriesKind};
use crate::model::{SetType, StrengthSet};
use crate::status::hr_max;
use crate::store::benchmarks::Unit;
use crate::store::{Client, NewBenchmark, NewClient, Store, StoreError};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Offset, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

/// The demo clients, in the order they are created.
pub const CLIENTS: [&str; 4] = ["alex", "sam", "jordan", "riley"];

/// How many days of history the demo writes.
pub const DAYS: i64 = 91;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DemoReport {
    pub clients: usize,
    pub homework: usize,
    pub activities: usize,
    pub samples: usize,
    pub checkins: usize,
    pub excused: usize,
    pub benchmarks: usize,
}

/// A small deterministic generator (SplitMix64), so the demo and the chart gallery are
/// the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// Whether the demo clients exist already.
pub async fn present(store: &Store) -> Result<bool, StoreError> {
    let names: Vec<String> = store.list_clients().await?.into_iter().map(|c| c.name.to_lowercase()).collect();
    Ok(CLIENTS.iter().any(|c| names.iter().any(|n| n == c)))
}

/// Write the demo data set as of `now`. Refuses (Duplicate) when a demo client exists.
pub async fn create(store: &Store, now: DateTime<Utc>) -> Result<DemoReport, StoreError> {
    if present(store).await? {
        return Err(StoreError::Duplicate(format!(
            "the demo clients ({}) exist already; use another --data-dir for a fresh demo",
            CLIENTS.join(", ")
        )));
    }
    let mut report = DemoReport::default();
    let mut rng = Rng(0x00C0_AC4D);
    let mut demo = Demo { store, now, report: &mut report, rng: &mut rng };
    demo.alex().await?;
    demo.sam().await?;
    demo.jordan().await?;
    demo.riley().await?;
    Ok(report)
}

struct Demo<'a> {
    store: &'a Store,
    now: DateTime<Utc>,
    report: &'a mut DemoReport,
    rng: &'a mut Rng,
}

/// One workout to write.
struct Plan<'p> {
    ty: &'p str,
    local_start: (NaiveDate, u32, u32),
    minutes: f64,
    /// Steady-state effort as a fraction of HR max (None: no heart rate).
    effort: Option<f64>,
    /// Push-ups, squats, ... as one set each.
    sets: Vec<(&'p str, u32)>,
}

impl Demo<'_> {
    async fn client(
        &mut self,
        name: &str,
        tz: &str,
        hr_max: Option<u32>,
        born: Option<i32>,
    ) -> Result<Client, StoreError> {
        let new = NewClient::parse(name, tz, hr_max, born).map_err(StoreError::Invalid)?;
        self.report.clients += 1;
        self.store.add_client(&new).await
    }

    fn today(&self, c: &Client) -> Result<NaiveDate, StoreError> {
        Ok(self.now.with_timezone(&c.tz).date_naive())
    }

    async fn homework(
        &mut self,
        c: &Client,
        phrase: &str,
        days: Option<&[Weekday]>,
        from: NaiveDate,
    ) -> Result<i64, StoreError> {
        let mut rule = phrase::parse(phrase).map_err(|e| StoreError::Invalid(vec![e]))?;
        if let Some(days) = days {
            rule.schedule = Schedule::Days(days.to_vec());
        }
        self.report.homework += 1;
        Ok(self.store.add_homework(c.id, &rule, from, None).await?.homework.id)
    }

    /// A workout recorded by `sources` (the first keeps the full HR series; the others
    /// are the same session seen by a cloud: a few seconds off, summary only).
    async fn workout(&mut self, c: &Client, sources: &[&str], plan: Plan<'_>) -> Result<(), StoreError> {
        let tz = c.tz;
        let (day, h, m) = plan.local_start;
        let Some(start) = local(tz, day, h, m) else { return Ok(()) };
        let end = start + Duration::milliseconds((plan.minutes * 60_000.0) as i64);
        if end > self.now {
            return Ok(());
        }
        let max = hr_max(c, day).unwrap_or(185.0);
        let mut hr = Vec::new();
        if let Some(effort) = plan.effort {
            let n = (plan.minutes * 60.0) as i64;
            let mut drift = 0.0;
            for s in 0..n {
                // Warm-up over 5 minutes, a steady block with slow drift, cool-down at the end.
                let ramp = (s as f64 / 300.0).min(1.0);
                let cool = ((n - s) as f64 / 180.0).min(1.0);
                drift = (drift + self.rng.range(-0.4, 0.4)).clamp(-6.0, 6.0);
                let bpm = 72.0 + (effort * max - 72.0) * ramp * (0.85 + 0.15 * cool) + drift;
                hr.push(Sample { t_ms: start.timestamp_millis() + s * 1000, value: bpm.round() });
            }
        }
        let avg = (!hr.is_empty()).then(|| hr.iter().map(|s| s.value).sum::<f64>() / hr.len() as f64);
        let top = hr.iter().map(|s| s.value as u16).max();
        let sets = (!plan.sets.is_empty()).then(|| {
            plan.sets
                .iter()
                .enumerate()
                .map(|(i, (exercise, reps))| StrengthSet {
                    start: Some(start + Duration::seconds(i as i64 * 90)),
                    duration_s: Some(40.0),
                    exercise: (*exercise).into(),
                    set_type: SetType::Active,
                    reps: Some(*reps),
                    weight_kg: None,
                })
                .collect()
        });
        for (i, source) in sources.iter().enumerate() {
            let shift = Duration::seconds(i as i64 * 3);
            let series = if i == 0 && !hr.is_empty() {
                self.report.samples += hr.len();
                vec![Series { kind: SeriesKind::Hr, samples: hr.clone() }]
            } else {
                Vec::new()
            };
            let activity = NewActivity {
                client_id: c.id,
                external_id: format!("demo-{}-{}", c.name, start.timestamp()),
                start: start + shift,
                end: end + shift,
                utc_offset_s: tz.offset_from_utc_datetime(&start.naive_utc()).fix().local_minus_utc(),
                activity_type: plan.ty.into(),
                category: crate::activity_types::category(plan.ty),
                duration_s: plan.minutes * 60.0,
                distance_m: None,
                avg_hr: avg,
                max_hr: top,
                energy_kj: None,
                content_hash: None,
                series,
                sets: if i == 0 { sets.clone() } else { None },
                hr_zones: None,
            };
            let mut batch = Batch::new(*source);
            batch.activities.push(activity);
            batch.cursor = Some(Cursor { stream: format!("demo-{}", c.name), value: start.timestamp().to_string() });
            self.store.ingest(&batch).await?;
            self.report.activities += 1;
        }
        Ok(())
    }

    async fn daily(
        &mut self,
        c: &Client,
        source: &str,
        metric: Metric,
        values: Vec<(NaiveDate, f64)>,
    ) -> Result<(), StoreError> {
        let mut batch = Batch::new(source);
        batch.daily =
            values.into_iter().map(|(date, value)| DailyMetric { client_id: c.id, date, metric, value }).collect();
        self.store.ingest(&batch).await?;
        Ok(())
    }

    async fn checkin(
        &mut self,
        c: &Client,
        hw: i64,
        day: NaiveDate,
        value: f64,
        note: Option<&str>,
    ) -> Result<(), StoreError> {
        self.report.checkins += 1;
        self.store.add_checkin(c.id, hw, day, Some(value), note, "demo").await?;
        Ok(())
    }

    /// A test recorded in a session (values fixed, so the generator's sequence and every
    /// other chart of the gallery stay as they were).
    async fn benchmark(
        &mut self,
        c: &Client,
        name: &str,
        unit: Unit,
        value: f64,
        date: NaiveDate,
        homework: Option<i64>,
    ) -> Result<(), StoreError> {
        self.report.benchmarks += 1;
        let b = NewBenchmark {
            client_id: c.id,
            name: name.into(),
            unit,
            value,
            note: None,
            homework_id: homework,
            date,
            trainer_id: None,
        };
        self.store.add_benchmark(&b).await?;
        Ok(())
    }

    async fn excuse(&mut self, c: &Client, hw: i64, day: NaiveDate, reason: &str) -> Result<(), StoreError> {
        self.report.excused += 1;
        self.store.excuse(c.id, hw, day, Some(reason)).await
    }

    /// Steps on every day the watch was worn (`worn` of days), up to yesterday; today's
    /// count so far.
    async fn steps(
        &mut self,
        c: &Client,
        first: NaiveDate,
        worn: f64,
        mean: f64,
        slip_from: Option<NaiveDate>,
    ) -> Result<(), StoreError> {
        let today = self.today(c)?;
        let mut values = Vec::new();
        for day in first.iter_days().take_while(|d| *d <= today) {
            if !self.rng.chance(worn) {
                continue;
            }
            let slipping = slip_from.is_some_and(|s| day >= s);
            let m = if slipping { mean * 0.6 } else { mean };
            let mut v = self.rng.range(m * 0.7, m * 1.3).round();
            if day == today {
                v = (v * 0.6).round();
            }
            values.push((day, v));
        }
        self.daily(c, "apple_health", Metric::Steps, values).await
    }

    async fn alex(&mut self) -> Result<(), StoreError> {
        let c = self.client("alex", "Europe/Berlin", Some(186), Some(1990)).await?;
        let today = self.today(&c)?;
        let first = today - Duration::days(DAYS - 1);
        let off_days = [Weekday::Tue, Weekday::Thu, Weekday::Sat, Weekday::Sun];
        let cardio = self.homework(&c, "15 minutes of cardio", Some(&off_days), first).await?;
        let pushups = self.homework(&c, "10 push-ups every night before bed", None, first).await?;
        let steps = self.homework(&c, "8000 steps a day", None, first).await?;
        let sick = today - Duration::days(37);
        for day in first.iter_days().take_while(|d| *d <= today) {
            let ill = (sick..sick + Duration::days(3)).contains(&day);
            if ill {
                for hw in [cardio, pushups, steps] {
                    self.excuse(&c, hw, day, "flu").await?;
                }
                continue;
            }
            if off_days.contains(&day.weekday()) && self.rng.chance(0.85) {
                let minutes =
                    if self.rng.chance(0.15) { self.rng.range(8.0, 13.0) } else { self.rng.range(18.0, 42.0) };
                let ty = if self.rng.chance(0.7) { "run" } else { "ride" };
                let sources: &[&str] = if self.rng.chance(0.5) { &["fit", "strava"] } else { &["fit"] };
                let hour = self.rng.range(7.0, 18.0) as u32;
                let effort = Some(self.rng.range(0.68, 0.82));
                let plan = Plan { ty, local_start: (day, hour, 15), minutes, effort, sets: vec![] };
                self.workout(&c, sources, plan).await?;
            }
            // Push-ups: rising from ~7 to ~13 over the three months; recorded by the
            // watch's strength mode some nights, self-reported on others.
            let progress = (day - first).num_days() as f64 / DAYS as f64;
            let reps = (7.0 + 6.0 * progress + self.rng.range(-2.0, 2.0)).round().max(3.0) as u32;
            let roll = self.rng.unit();
            if day == today {
                continue; // tonight's push-ups are still to come: pending
            }
            if roll < 0.45 {
                let plan = Plan {
                    ty: "strength",
                    local_start: (day, 21, 40),
                    minutes: 4.0,
                    effort: None,
                    sets: vec![("push_up", reps)],
                };
                self.workout(&c, &["fit"], plan).await?;
            } else if roll < 0.85 {
                self.checkin(&c, pushups, day, f64::from(reps), None).await?;
            }
        }
        // Every four weeks in a session: max push-ups and their form, for the push-up
        // homework; a plank between them, for no homework.
        for (i, (reps, form)) in [(9.0, 3.0), (11.0, 3.0), (14.0, 4.0), (16.0, 4.0)].into_iter().enumerate() {
            let day = first + Duration::days(28 * i as i64);
            self.benchmark(&c, "max push-ups", Unit::Reps, reps, day, Some(pushups)).await?;
            self.benchmark(&c, "push-up form", Unit::Score, form, day, Some(pushups)).await?;
        }
        for (i, secs) in [45.0, 60.0, 70.0].into_iter().enumerate() {
            self.benchmark(&c, "plank", Unit::Seconds, secs, first + Duration::days(14 + 28 * i as i64), None).await?;
        }
        self.steps(&c, first, 0.93, 9000.0, None).await
    }

    async fn sam(&mut self) -> Result<(), StoreError> {
        let c = self.client("sam", "America/New_York", None, Some(1985)).await?;
        let today = self.today(&c)?;
        let first = today - Duration::days(DAYS - 1);
        self.homework(&c, "30 min zone 2 twice a week", None, first).await?;
        self.homework(&c, "7 hours of sleep nightly", None, first).await?;
        let mobility = self.homework(&c, "20 minutes of mobility 3 times a week", None, first).await?;
        let mut sleep = Vec::new();
        for day in first.iter_days().take_while(|d| *d <= today) {
            match day.weekday() {
                Weekday::Mon | Weekday::Thu if self.rng.chance(0.9) => {
                    let minutes = self.rng.range(32.0, 50.0);
                    let effort = Some(0.66);
                    let plan = Plan { ty: "ride", local_start: (day, 6, 30), minutes, effort, sets: vec![] };
                    // The strap and the bike computer both record it; Strava gets the bike's copy.
                    self.workout(&c, &["ble", "fit", "strava"], plan).await?;
                }
                Weekday::Tue | Weekday::Fri | Weekday::Sun if self.rng.chance(0.8) => {
                    let minutes = self.rng.range(18.0, 30.0);
                    let plan =
                        Plan { ty: "yoga", local_start: (day, 19, 0), minutes, effort: Some(0.45), sets: vec![] };
                    self.workout(&c, &["fit"], plan).await?;
                }
                Weekday::Wed if self.rng.chance(0.3) => {
                    self.checkin(&c, mobility, day, 20.0, Some("stretching at the office")).await?;
                }
                _ => {}
            }
            // Sleep is dated the morning it ends.
            if day > first {
                sleep.push((day, self.rng.range(6.3, 8.4) * 3600.0));
            }
        }
        let (mut beds, mut wakes) = (Vec::new(), Vec::new());
        for (day, asleep_s) in &sleep {
            if let Some((bed, wake)) = night_times(c.tz, *day, *asleep_s, self.now) {
                beds.push((*day, bed));
                wakes.push((*day, wake));
            }
        }
        self.daily(&c, "oura", Metric::SleepS, sleep).await?;
        self.daily(&c, "oura", Metric::SleepStart, beds).await?;
        self.daily(&c, "oura", Metric::SleepEnd, wakes).await?;
        self.steps(&c, first, 0.97, 7000.0, None).await
    }

    async fn jordan(&mut self) -> Result<(), StoreError> {
        let c = self.client("jordan", "Europe/London", Some(192), None).await?;
        let today = self.today(&c)?;
        let first = today - Duration::days(DAYS - 1);
        let slip = today - Duration::days(15);
        self.homework(&c, "15 minutes of cardio", None, first).await?;
        let squats = self.homework(&c, "20 squats every night", None, first).await?;
        self.homework(&c, "8000 steps a day", None, first).await?;
        for day in first.iter_days().take_while(|d| *d < today) {
            let p = if day >= slip { 0.3 } else { 0.85 };
            if self.rng.chance(p) {
                let minutes = self.rng.range(14.0, 35.0);
                let ty = ["run", "row", "elliptical"][(self.rng.next() % 3) as usize];
                let plan = Plan {
                    ty,
                    local_start: (day, 17, 45),
                    minutes,
                    effort: Some(self.rng.range(0.7, 0.85)),
                    sets: vec![],
                };
                self.workout(&c, &["fit", "strava"], plan).await?;
            }
            if self.rng.chance(p) {
                let reps = self.rng.range(12.0, 24.0).round() as u32;
                let plan = Plan {
                    ty: "strength",
                    local_start: (day, 22, 10),
                    minutes: 3.0,
                    effort: None,
                    sets: vec![("squat", reps)],
                };
                self.workout(&c, &["fit"], plan).await?;
            } else if day < slip && self.rng.chance(0.5) {
                self.checkin(&c, squats, day, 20.0, Some("forgot the watch")).await?;
            }
        }
        self.steps(&c, first, 0.9, 8500.0, Some(slip)).await
    }

    async fn riley(&mut self) -> Result<(), StoreError> {
        let c = self.client("riley", "Australia/Sydney", None, Some(1996)).await?;
        let today = self.today(&c)?;
        let first = today - Duration::days(20);
        let recovery = self.homework(&c, "a recovery routine every day", None, first).await?;
        self.homework(&c, "2 runs per week", None, first).await?;
        for day in first.iter_days().take_while(|d| *d < today) {
            if matches!(day.weekday(), Weekday::Wed | Weekday::Sat) && self.rng.chance(0.8) {
                let minutes = self.rng.range(25.0, 45.0);
                let plan = Plan { ty: "run", local_start: (day, 6, 0), minutes, effort: Some(0.75), sets: vec![] };
                self.workout(&c, &["strava"], plan).await?;
            }
            let roll = self.rng.unit();
            if roll < 0.5 {
                let plan =
                    Plan { ty: "recovery", local_start: (day, 20, 30), minutes: 12.0, effort: None, sets: vec![] };
                self.workout(&c, &["fit"], plan).await?;
            } else if roll < 0.7 {
                self.checkin(&c, recovery, day, 1.0, Some("foam roller")).await?;
            }
        }
        self.steps(&c, first, 0.95, 10000.0, None).await
    }
}

/// Bed and wake times (Unix seconds) of a night with `asleep_s` asleep that ends on `day`:
/// up by about 06:00 before the 06:30 ride on Mondays and Thursdays, 06:20-07:45 on other
/// days, with 10-35 minutes awake in the night; none for a wake-up still to come. From a
/// generator of their own, so every other number of the demo stays as it was.
fn night_times(tz: Tz, day: NaiveDate, asleep_s: f64, now: DateTime<Utc>) -> Option<(f64, f64)> {
    let mut rng = Rng(0x51EE_9000 ^ u64::from(day.num_days_from_ce().unsigned_abs()));
    let early = matches!(day.weekday(), Weekday::Mon | Weekday::Thu);
    let minute = if early { rng.range(355.0, 370.0) } else { rng.range(380.0, 465.0) } as u32;
    let wake = local(tz, day, minute / 60, minute % 60)?;
    let awake_s = rng.range(600.0, 2100.0);
    let bed = wake - Duration::seconds((asleep_s + awake_s) as i64);
    (wake <= now).then(|| (bed.timestamp() as f64, wake.timestamp() as f64))
}

fn local(tz: Tz, day: NaiveDate, h: u32, m: u32) -> Option<DateTime<Utc>> {
    let t = NaiveTime::from_hms_opt(h, m, 0)?;
    tz.from_local_datetime(&day.and_time(t)).earliest().map(|d| d.with_timezone(&Utc))
}

/// The demo's trainer login: `coach`, with a fresh random password (returned) when the
/// data dir has no trainer yet; the trainer adopts every client without one.
pub async fn trainer(store: &Store) -> Result<Option<String>, StoreError> {
    if !store.trainers().await?.is_empty() {
        return Ok(None);
    }
    let password = crate::crypto::random_token()?[..20].to_string();
    let hash = crate::crypto::hash_password(&password)?;
    let (t, _) = store.upsert_trainer("coach", &hash).await?;
    store.adopt_unassigned(t.id).await?;
    Ok(Some(password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_nights_end_in_the_morning_before_the_ride_and_never_in_the_future() {
        let tz = chrono_tz::America::New_York;
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).single().expect("now");
        let first = NaiveDate::from_ymd_opt(2026, 11, 1).expect("date");
        for day in first.iter_days().take(30) {
            let (bed, wake) = night_times(tz, day, 7.0 * 3600.0, now).expect("a past night");
            let wake_at = DateTime::from_timestamp(wake as i64, 0).expect("t").with_timezone(&tz);
            assert_eq!(wake_at.date_naive(), day, "dated by its wake-up day");
            assert!(wake - bed >= 7.0 * 3600.0 && wake - bed <= 8.0 * 3600.0, "{day}: {}", wake - bed);
            if matches!(day.weekday(), Weekday::Mon | Weekday::Thu) {
                assert!(wake_at.time() < NaiveTime::from_hms_opt(6, 30, 0).expect("t"), "{day}: up before the ride");
            }
            assert_eq!(night_times(tz, day, 7.0 * 3600.0, now), Some((bed, wake)), "deterministic");
        }
        assert_eq!(night_times(tz, now.date_naive() + Duration::days(1), 7.0 * 3600.0, now), None);
    }
}
