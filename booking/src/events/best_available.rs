//! Best-available seating: choosing N adjacent seats in one row for a customer
//! who asked for "the best N seats in section S" instead of naming seats.
//!
//! Definitions:
//! - Two seats are *adjacent* iff they are neighbours in their row's list and
//!   their numbers differ by exactly one (a jump in numbering is an aisle).
//! - A *run* is a maximal sequence of available seats in which each seat is
//!   adjacent to the next, regardless of tier.
//! - A *placement* is N consecutive seats of one run that are all *eligible*
//!   (of the requested tier, or any tier if none was requested). It leaves `L`
//!   available seats of its run on its left and `R` on its right.
//! - A placement is *clean* if neither `L` nor `R` is exactly 1. A placement that
//!   leaves a single seat stranded next to it creates an *orphan*: a seat that
//!   can only ever be sold alone, which venues avoid.
//!
//! Preference, exactly:
//! 1. If any row of the section has a clean placement, take the clean placement
//!    in the frontmost such row (rows in spec order, front first), and within
//!    that row the leftmost one (smallest position in the row's list).
//! 2. Otherwise take the leftmost placement of the frontmost row that has one,
//!    orphan or not.
//! 3. Otherwise there is no placement: the caller answers `not_enough_seats`.
//!
//! Runs are delimited by availability, not by tier, because an orphan is a
//! physical property: an available seat of another tier right next to the
//! placement is still a neighbour that can be sold with its own run.
//!
//! This module is a pure function of the seat map and availability; it neither
//! checks names nor changes any state.

use crate::layout::SeatMap;

/// One seat of a row as best-available sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RowSeat {
    /// Seat index in spec order: what the placement is made of.
    pub index: u32,
    pub number: u32,
    pub available: bool,
    /// Of the requested tier (always true without a tier filter).
    pub eligible: bool,
}

/// Chooses `quantity` seats in one row of `section` of `map`, or `None`.
pub(crate) fn choose_seats(
    map: &SeatMap,
    section: u32,
    tier: Option<u32>,
    quantity: u32,
    is_available: impl Fn(u32) -> bool,
) -> Option<Vec<u32>> {
    let rows = map.section_rows(section).iter().map(|row| {
        row.seats
            .clone()
            .map(|index| {
                let seat = &map.seats[index as usize];
                RowSeat {
                    index,
                    number: seat.number,
                    available: is_available(index),
                    eligible: tier.is_none_or(|tier| seat.tier == tier),
                }
            })
            .collect::<Vec<_>>()
    });
    choose_in_rows(rows, quantity as usize)
}

/// The preference rule over rows given front row first.
pub(crate) fn choose_in_rows(
    rows: impl IntoIterator<Item = Vec<RowSeat>>,
    quantity: usize,
) -> Option<Vec<u32>> {
    if quantity == 0 {
        return None;
    }
    let mut fallback = None;
    for row in rows {
        let Some(placement) = first_placements(&row, quantity) else {
            continue;
        };
        if let Some(start) = placement.clean {
            return Some(seat_indexes(&row, start, quantity));
        }
        if fallback.is_none() {
            fallback = Some(seat_indexes(&row, placement.any, quantity));
        }
    }
    fallback
}

/// The leftmost placements of one row: any, and clean if there is one.
struct RowPlacements {
    any: usize,
    clean: Option<usize>,
}

/// Scans a row's runs left to right, returning positions in the row's list.
fn first_placements(row: &[RowSeat], quantity: usize) -> Option<RowPlacements> {
    let mut any = None;
    let mut run_start = 0;
    while run_start < row.len() {
        if !row[run_start].available {
            run_start += 1;
            continue;
        }
        let mut run_end = run_start + 1;
        while run_end < row.len() && row[run_end].available && adjacent(&row[run_end - 1], &row[run_end]) {
            run_end += 1;
        }
        let run = &row[run_start..run_end];
        // Slide a window over the run, counting eligible seats inside it.
        if run.len() >= quantity {
            let mut eligible = run[..quantity].iter().filter(|s| s.eligible).count();
            for offset in 0..=run.len() - quantity {
                if offset > 0 {
                    eligible -= usize::from(run[offset - 1].eligible);
                    eligible += usize::from(run[offset + quantity - 1].eligible);
                }
                if eligible < quantity {
                    continue;
                }
                let left = offset;
                let right = run.len() - offset - quantity;
                if left != 1 && right != 1 {
                    return Some(RowPlacements {
                        any: any.unwrap_or(run_start + offset),
                        clean: Some(run_start + offset),
                    });
                }
                any.get_or_insert(run_start + offset);
            }
        }
        run_start = run_end;
    }
    any.map(|any| RowPlacements { any, clean: None })
}

fn adjacent(left: &RowSeat, right: &RowSeat) -> bool {
    left.number.abs_diff(right.number) == 1
}

fn seat_indexes(row: &[RowSeat], start: usize, quantity: usize) -> Vec<u32> {
    row[start..start + quantity].iter().map(|s| s.index).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row from a picture: one character per seat, `.` available, `x` taken,
    /// `e` available but of another tier, `|` an aisle (a jump in numbering).
    /// Seat indexes are `row_base + position`.
    fn row(row_base: u32, picture: &str) -> Vec<RowSeat> {
        let mut number = 1;
        let mut seats = Vec::new();
        for c in picture.chars() {
            if c == '|' {
                number += 1;
                continue;
            }
            seats.push(RowSeat {
                index: row_base + seats.len() as u32,
                number,
                available: c != 'x',
                eligible: c == '.',
            });
            number += 1;
        }
        seats
    }

    fn choose(rows: &[&str], quantity: usize) -> Option<Vec<u32>> {
        let rows: Vec<_> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| row(100 * i as u32, r))
            .collect();
        choose_in_rows(rows, quantity)
    }

    #[test]
    fn takes_the_front_row_from_the_left() {
        assert_eq!(choose(&["..........", ".........."], 3), Some(vec![0, 1, 2]));
    }

    #[test]
    fn skips_placements_that_strand_one_seat() {
        // Run of 4 at positions 0..4: taking 3 from the left leaves one on the right,
        // from position 1 leaves one on the left. Position 5.. is a run of 5.
        assert_eq!(choose(&["....x....."], 3), Some(vec![5, 6, 7]));
        // Leaving two on one side and none on the other is fine.
        assert_eq!(choose(&["xx...x"], 1), Some(vec![2]));
    }

    #[test]
    fn exact_fit_is_clean() {
        assert_eq!(choose(&["x...x....."], 3), Some(vec![1, 2, 3]));
    }

    #[test]
    fn a_clean_placement_in_a_back_row_beats_an_orphan_in_front() {
        assert_eq!(choose(&["xx...", "......"], 2), Some(vec![100, 101]));
    }

    #[test]
    fn an_orphan_is_accepted_only_when_no_row_is_clean() {
        // Every row has three seats left; taking two always strands one.
        assert_eq!(choose(&["x...x", "..."], 2), Some(vec![1, 2]));
    }

    #[test]
    fn aisles_split_runs() {
        // Seats 1-2 | 4-6: three together only exist right of the aisle.
        assert_eq!(choose(&["..|..."], 3), Some(vec![2, 3, 4]));
        assert_eq!(choose(&["..|.."], 3), None);
        // An aisle is also a boundary for orphans: one seat left of an aisle is fine.
        assert_eq!(choose(&[".|..x"], 2), Some(vec![1, 2]));
    }

    #[test]
    fn numbering_may_run_right_to_left() {
        let descending: Vec<RowSeat> = (0..4)
            .map(|i| RowSeat {
                index: i,
                number: 10 - i,
                available: i != 0,
                eligible: true,
            })
            .collect();
        assert_eq!(choose_in_rows([descending], 3), Some(vec![1, 2, 3]));
    }

    #[test]
    fn the_tier_filter_limits_placements_but_not_runs() {
        // "ee....": the two other-tier seats belong to the run. Four seats fit
        // only at the right end (leaving two on the left). For three, the first
        // eligible window strands the last seat, so the next window is taken.
        assert_eq!(choose(&["ee...."], 4), Some(vec![2, 3, 4, 5]));
        assert_eq!(choose(&["ee...."], 3), Some(vec![3, 4, 5]));
        // "e..": placing two at positions 1-2 leaves one (other-tier) seat on the
        // left: an orphan, but the only placement.
        assert_eq!(choose(&["e.."], 2), Some(vec![1, 2]));
        assert_eq!(choose(&["eeee"], 1), None);
    }

    #[test]
    fn nothing_fits() {
        assert_eq!(choose(&["x.x.x", ".x.x."], 2), None);
        assert_eq!(choose(&[], 1), None);
        assert_eq!(choose(&["...."], 0), None);
        assert_eq!(choose(&["...."], 5), None);
    }

    #[test]
    fn single_seat_requests_avoid_orphans_too() {
        // Taking seat 0 of "..x" leaves seat 1 alone; seat 1 leaves seat 0 alone.
        // Row two has a clean single seat.
        assert_eq!(choose(&["..x", "x.x"], 1), Some(vec![101]));
    }
}
