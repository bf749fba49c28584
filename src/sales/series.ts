/**
 * A metric's series by one label, each made once, with its attributes built in, and kept.
 * `Metric.withAttributes` wraps a shared metric and adds its attributes to the context at every
 * update, so the shared metric computes its series key (sorted, stringified attributes) again
 * whenever the series changes from one update to the next, as it does for every request when
 * requests take turns among workers.
 */
export const seriesBy = <M>(make: (value: string) => M): (value: string) => M => {
  const made = new Map<string, M>()
  return (value) => {
    let series = made.get(value)
    if (series === undefined) {
      series = make(value)
      made.set(value, series)
    }
    return series
  }
}
