use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use askmark::pool::{spread, Gate, Priority};

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

#[test]
fn spread_gives_the_next_input_to_whichever_thread_is_free_and_keeps_the_order() {
    // The first input finishes only once every other input is done: with a fixed share per
    // thread (inputs 0, 2, 4 on one thread) the other thread could never do inputs 2 and 4.
    let inputs: Vec<usize> = (0..6).collect();
    let others_done = AtomicUsize::new(0);
    let (all_done, wait_for_all) = mpsc::channel();
    let wait_for_all = Mutex::new(wait_for_all);
    let results = spread(&inputs, 2, |&input| {
        if input == 0 {
            wait_for_all.lock().unwrap().recv_timeout(PATIENCE).map_err(|_| "the other thread left inputs undone")?;
        } else if others_done.fetch_add(1, Ordering::SeqCst) + 1 == inputs.len() - 1 {
            all_done.send(()).unwrap();
        }
        Ok::<usize, &str>(input * 10)
    });
    assert_eq!(results, Ok(vec![0, 10, 20, 30, 40, 50]));
    assert_eq!(spread(&inputs, 2, |&input| if input == 3 { Err(input) } else { Ok(input) }), Err(3));
}
