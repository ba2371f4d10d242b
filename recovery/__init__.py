"""The recovery role: verification sweeps for stuck, missed and half-published jobs."""
