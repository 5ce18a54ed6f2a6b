use std::sync::mpsc;
use std::time::Duration;

use askmark::pool::{Gate, Priority};

/// Long enough for a thread that may enter to have entered; far below any real wait.
const SETTLE: Duration = Duration::from_millis(30);
const PATIENCE: Duration = Duration::from_secs(10);

#[test]
fn while_searches_come_in_batch_runs_leave_a_place_for_the_next_search() {
    let gate = Gate::new(2);
    drop(gate.enter(Priority::Interactive));
    let batch = gate.enter(Priority::Batch);
    let gate = &gate;
    std::thread::scope(|scope| {
        let (batch_in, batch_entered) = mpsc::channel();
        let second_batch = scope.spawn(move || {
            let pass = gate.enter(Priority::Batch);
            batch_in.send(()).unwrap();
            pass
        });
        std::thread::sleep(SETTLE);
        assert!(batch_entered.try_recv().is_err(), "a second batch run took the place kept for searches");
        let (search_in, search_entered) = mpsc::channel();
        let search = scope.spawn(move || {
            let pass = gate.enter(Priority::Interactive);
            search_in.send(()).unwrap();
            pass
        });
        search_entered.recv_timeout(PATIENCE).expect("the search gets the kept place at once");
        drop(search.join().unwrap());
        drop(batch);
        batch_entered.recv_timeout(PATIENCE).expect("once searches stop, batch work has every place again");
        drop(second_batch.join().unwrap());
    });
    assert_eq!(gate.free(), 2);
}
